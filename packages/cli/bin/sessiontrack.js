#!/usr/bin/env node
// The `sessiontrack` command. The code lives in dist/ (run `make build` first).
import { main } from "../dist/main.js";

process.exitCode = await main(process.argv.slice(2));
