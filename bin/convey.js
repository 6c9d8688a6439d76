#!/usr/bin/env node
// The built CLI (npm run build). During development: node --import tsx src/cli/bin.ts
import '../dist/src/cli/bin.js';
