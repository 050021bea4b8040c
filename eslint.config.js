import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'services/common/db/schema.generated.ts', '.test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: 'error',
      curly: 'error',
      'no-process-env': 'error',
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/ingest/**', '**/worker/**', '**/api/**'], message: 'services/common must not import a role; roles must not import each other.' },
          ],
        },
      ],
    },
  },
  {
    files: ['services/common/config.ts', 'test/**', 'scripts/**', 'vitest.config.ts'],
    rules: { 'no-process-env': 'off' },
  },
  {
    files: ['services/main.ts', 'test/**', 'services/ingest/**', 'services/worker/**', 'services/api/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
