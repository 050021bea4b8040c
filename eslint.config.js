import js from '@eslint/js';
import tseslint from 'typescript-eslint';

function boundaries(files, forbidden) {
  return [
    {
      files: [files],
      rules: {
        'no-restricted-imports': [
          'error',
          { patterns: [{ group: forbidden.map((r) => `**/${r}/**`), message: 'layers: common ← core ← {ingest, worker, api, cli}; roles and the CLI never import each other.' }] },
        ],
      },
    },
  ];
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'services/common/db/schema.generated.ts', '.test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js', 'bin/*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      eqeqeq: 'error',
      curly: 'error',
      'no-process-env': 'error',
    },
  },
  // The launchers are plain JavaScript that old Nodes must parse (bin/node-check.js says why).
  { files: ['eslint.config.js', 'bin/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    // Tests poke at parsed JSON and fixtures on purpose.
    files: ['test/**', '**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    files: ['services/common/config.ts', 'services/main.ts', 'services/cli/main.ts', 'test/**', 'scripts/**', 'vitest.config.ts'],
    rules: { 'no-process-env': 'off' },
  },
  // Module boundaries (README, Architecture): common (platform and contracts) imports nothing above it; core
  // (the engine: registry client, verification, discovery, decider, reverify, crawl) imports only
  // common; the roles and the CLI import core and common, never each other; the verification core
  // has no database, Redis or queue.
  ...boundaries('services/common/**', ['core', 'ingest', 'worker', 'api', 'cli']),
  ...boundaries('services/core/**', ['ingest', 'worker', 'api', 'cli']),
  ...boundaries('services/ingest/**', ['worker', 'api', 'cli']),
  ...boundaries('services/api/**', ['ingest', 'worker', 'cli']),
  ...boundaries('services/worker/**', ['ingest', 'api', 'cli']),
  ...boundaries('services/cli/**', ['ingest', 'worker', 'api']),
  {
    files: ['services/core/verification/**'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/ingest/**', '**/api/**', '**/common/db/**', '**/common/redis.ts', '**/oci/**'], message: 'verification is pure: no I/O modules.' },
            { group: ['bullmq', 'ioredis', 'pg', 'kysely'], message: 'verification is pure: no I/O modules.' },
          ],
        },
      ],
    },
  },
);
