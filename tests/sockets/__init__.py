"""Tests of chaosgenesys.sockets: real sockets in network namespaces the tests create."""
