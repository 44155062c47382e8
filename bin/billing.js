#!/usr/bin/env node
// The `billing` command of the package: Node >= 22.18 runs the TypeScript sources directly.
import '../src/cli/main.ts';
