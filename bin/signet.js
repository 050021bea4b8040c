#!/usr/bin/env node
/* global process, URL */
// `signet <command>`: the CLI (services/cli/main.ts), after checking the Node version.
import { launch } from './node-check.js';

launch(new URL('../services/cli/main.ts', import.meta.url).href).catch((err) => {
  process.stderr.write(`signet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
