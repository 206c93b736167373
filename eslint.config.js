// Type-aware lint as errors (CONVENTIONS.md §9) and module boundaries (§1).
import js from "@eslint/js";
import nx from "@nx/eslint-plugin";
import prettier from "eslint-config-prettier";
import importX from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/**",
      "**/dist/**",
      "packages/proto/src/gen/**",
      ".nx/**",
      "loadtest/results/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ["**/*.ts"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@nx": nx, "import-x": importX },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          // node:test's test()/describe() return promises the runner itself awaits.
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["test", "it", "describe", "suite"] },
          ],
        },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "import-x/no-cycle": "error",
      "@nx/enforce-module-boundaries": [
        "error",
        {
          allow: [],
          depConstraints: [
            { sourceTag: "type:generated", onlyDependOnLibsWithTags: [] },
            { sourceTag: "type:lib", onlyDependOnLibsWithTags: ["type:lib", "type:generated"] },
            { sourceTag: "type:sdk", onlyDependOnLibsWithTags: ["type:lib", "type:generated"] },
            // A service composes libraries, never another service; apps (the CLI, tests) compose services.
            { sourceTag: "type:service", onlyDependOnLibsWithTags: ["type:lib", "type:generated"] },
            {
              sourceTag: "type:app",
              onlyDependOnLibsWithTags: ["type:lib", "type:generated", "type:sdk", "type:service"],
            },
            { sourceTag: "scope:client", onlyDependOnLibsWithTags: ["scope:shared", "scope:client"] },
            { sourceTag: "scope:ingest", onlyDependOnLibsWithTags: ["scope:shared", "scope:ingest"] },
            { sourceTag: "scope:archive", onlyDependOnLibsWithTags: ["scope:shared", "scope:archive"] },
            { sourceTag: "scope:index", onlyDependOnLibsWithTags: ["scope:shared", "scope:index"] },
            { sourceTag: "scope:operator", onlyDependOnLibsWithTags: ["scope:shared", "scope:operator"] },
            { sourceTag: "scope:shared", onlyDependOnLibsWithTags: ["scope:shared"] },
          ],
        },
      ],
    },
    settings: { "import-x/resolver-next": [] },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
  },
  prettier,
);
