"""The netem kernel harness: netem-marked tests run inside user-mode-linux (scripts/uml-run)."""
