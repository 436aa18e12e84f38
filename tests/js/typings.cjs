'use strict';
/**
 * The official JavaScript SDK's own description of the platform: its TypeScript typings
 * (node_modules/purecloud-platform-client-v2/index.d.ts). The SDK ships no run-time models, so
 * this reads the typings: every `export interface` of `declare namespace Models` (field, type,
 * required or not) and what each API method's promise resolves to.
 *
 * check(value, type) lists where a JSON value does not fit a type: a field the model does not
 * have, a required field missing, a value of the wrong JSON type. Typings spell dates `string`
 * and enums `string`, so those are checked as strings.
 */

const fs = require('fs');
const path = require('path');

function typingsPath() {
	const main = require.resolve('purecloud-platform-client-v2/package.json');
	return path.join(path.dirname(main), 'index.d.ts');
}

function load(file = typingsPath()) {
	const text = fs.readFileSync(file, 'utf8');
	const start = text.indexOf('declare namespace Models {');
	if (start < 0) throw new Error(`${file}: no "declare namespace Models"`);
	const models = new Map();
	let fields = null;
	for (const line of text.slice(start).split('\n')) {
		const opening = /^\texport interface (\w+) \{\s*$/.exec(line);
		if (opening) {
			fields = new Map();
			models.set(opening[1], fields);
		} else if (fields !== null && /^\t\}\s*$/.test(line)) {
			fields = null;
		} else if (fields !== null) {
			const field = /^\s*"([^"]+)"(\?)?: (.+);\s*$/.exec(line);
			if (field) fields.set(field[1], { type: field[3].trim(), optional: field[2] === '?' });
		}
	}
	const methods = new Map();
	let match;
	const classRe = /declare class (\w+Api) \{([\s\S]*?)\n\}/g;
	while ((match = classRe.exec(text)) !== null) {
		const methodRe = /^\s+(\w+)\(.*\): Promise<(.+)>;\s*$/gm;
		let method;
		while ((method = methodRe.exec(match[2])) !== null) {
			methods.set(`${match[1]}.${method[1]}`, method[2]);
		}
	}
	if (models.size < 1000 || methods.size < 1000) {
		throw new Error(`${file}: read only ${models.size} models and ${methods.size} methods`);
	}
	return { models, methods };
}

/** The T of a wrapper type: inner("Array<T>", "Array<", ">") is "T". */
function inner(type, open, close) {
	return type.slice(open.length, type.length - close.length).trim();
}

function jsonType(value) {
	if (value === null) return 'null';
	if (Array.isArray(value)) return 'array';
	return typeof value;
}

function check(typings, value, type, where = '$') {
	if (value === undefined || value === null) return [];
	type = type.trim();
	if (type === 'string' || type === 'number' || type === 'boolean') {
		return typeof value === type ? [] : [`${where}: expected ${type}, got ${jsonType(value)} ${JSON.stringify(value)}`];
	}
	if (type === 'object' || type === 'any') return [];
	if (type === 'void') return [];
	if (type.startsWith('Array<') && type.endsWith('>')) {
		if (!Array.isArray(value)) return [`${where}: expected ${type}, got ${jsonType(value)}`];
		const item = inner(type, 'Array<', '>');
		return value.flatMap((v, i) => check(typings, v, item, `${where}[${i}]`));
	}
	let mapOf = null;
	if (type.startsWith('{ [key: string]: ') && type.endsWith('; }')) mapOf = inner(type, '{ [key: string]: ', '; }');
	if (type.startsWith('Record<string, ') && type.endsWith('>')) mapOf = inner(type, 'Record<string, ', '>');
	if (mapOf !== null) {
		if (jsonType(value) !== 'object') return [`${where}: expected ${type}, got ${jsonType(value)}`];
		return Object.entries(value).flatMap(([k, v]) => check(typings, v, mapOf, `${where}.${k}`));
	}
	const name = type.startsWith('Models.') ? type.slice('Models.'.length) : type;
	const fields = typings.models.get(name);
	if (fields === undefined) return [`${where}: the typings have no type ${type}`];
	if (jsonType(value) !== 'object') return [`${where}: expected ${name}, got ${jsonType(value)}`];
	const problems = [];
	for (const [key, v] of Object.entries(value)) {
		const field = fields.get(key);
		if (field === undefined) {
			problems.push(`${where}.${key}: not a field of ${name}`);
			continue;
		}
		problems.push(...check(typings, v, field.type, `${where}.${key}`));
	}
	for (const [key, field] of fields) {
		if (!field.optional && !(key in value)) problems.push(`${where}.${key}: required by ${name}, missing`);
	}
	return problems;
}

module.exports = { load, check, typingsPath };
