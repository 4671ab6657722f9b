// Generates the typed protobuf module from proto/*.proto into shared/generated/ (a build
// artefact, git-ignored) and copies it beside the compiled code in dist/shared/generated/.
// Only shared/protocol.ts imports it.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'shared', 'generated');
const bin = (name) => join(root, 'node_modules', 'protobufjs-cli', 'bin', name);
mkdirSync(out, { recursive: true });
const js = join(out, 'proto.js');
execFileSync(process.execPath, [bin('pbjs'), '-t', 'static-module', '-w', 'es6', '--no-typeurl',
  '--no-verify', '--force-number', '-o', js, join(root, 'proto', 'dicomstream.proto'), join(root, 'proto', 'index.proto')], { stdio: 'inherit' });
// protobufjs is CommonJS without an exports map: Node's ESM loader needs the file name and the
// default import.
const source = readFileSync(js, 'utf8').replace(/import \* as \$protobuf from "protobufjs\/minimal";/, 'import $protobuf from "protobufjs/minimal.js";');
writeFileSync(js, source);
execFileSync(process.execPath, [bin('pbts'), '-o', join(out, 'proto.d.ts'), js], { stdio: 'inherit' });
const dist = join(root, 'dist', 'shared', 'generated');
mkdirSync(dist, { recursive: true });
cpSync(out, dist, { recursive: true });
