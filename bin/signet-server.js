#!/usr/bin/env node
/* global process, URL */
// `npm start`: the server (services/main.ts), after checking the Node version.
import { launch } from './node-check.js';

launch(new URL('../services/main.ts', import.meta.url).href).catch((err) => {
  process.stderr.write(`signet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
