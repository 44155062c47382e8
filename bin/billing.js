#!/usr/bin/env node
// The `billing` command of the package. The Node version check comes first, as plain JavaScript;
// main.ts is imported dynamically so that it is only loaded after the check has passed.
import './require-node.js';

await import('../src/cli/main.ts');
