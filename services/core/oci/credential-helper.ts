import { spawn } from 'node:child_process';
import { RegistryError } from '../../common/errors.ts';
import type { RegistryCredentials } from './auth.ts';

/** How long a credential helper may take before it is killed (a helper that prompts never answers). */
export const DEFAULT_HELPER_TIMEOUT_MS = 10_000;
/** Helper answers are small JSON documents. */
const MAX_HELPER_OUTPUT_BYTES = 64 * 1024;
/** `docker-credential-<name>`: a name, never a path (the name comes from a config file). */
export const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** The user name a helper (and `docker login`) stores an identity token (OAuth2 refresh token) under. */
export const IDENTITY_TOKEN_USERNAME = '<token>';

/**
 * Runs `docker-credential-<name> get` with `serverUrl` on stdin, as the Docker CLI and containerd
 * do, and reads its `{"ServerURL","Username","Secret"}` answer. `null` when the helper says it has
 * no credentials for the server. A `<token>` user name means the secret is an identity token.
 * Throws `RegistryError`: `TRANSIENT` when the helper timed out (the job retries), `UNAUTHORIZED`
 * when it is missing, fails or answers something else (a configuration problem to fix). The
 * secret never appears in a message.
 */
export async function runCredentialHelper(name: string, serverUrl: string, timeoutMs = DEFAULT_HELPER_TIMEOUT_MS): Promise<RegistryCredentials | null> {
  const program = `docker-credential-${name}`;
  if (!HELPER_NAME.test(name)) {
    throw new RegistryError('UNAUTHORIZED', `credential helper ${JSON.stringify(name)} is not a helper name (docker-credential-<name>)`);
  }
  const { code, stdout, stderr, timedOut, spawnError } = await run(program, serverUrl, timeoutMs);
  const what = `credential helper ${program} (for ${serverUrl})`;
  if (spawnError !== undefined) {
    const why = spawnError.code === 'ENOENT' ? 'not found on PATH' : spawnError.code ?? spawnError.message;
    throw new RegistryError('UNAUTHORIZED', `${what}: cannot run it: ${why}`, { cause: spawnError });
  }
  if (timedOut) {
    throw new RegistryError('TRANSIENT', `${what}: no answer within ${timeoutMs} ms; killed`);
  }
  if (code !== 0) {
    // The protocol's "no credentials" answer (docker-credential-helpers' ErrCredentialsNotFound).
    if (/credentials not found/i.test(`${stdout} ${stderr}`)) {
      return null;
    }
    throw new RegistryError('UNAUTHORIZED', `${what}: exited with code ${code}: ${firstLine(stderr || stdout)}`);
  }
  return parseHelperAnswer(stdout, what);
}

function parseHelperAnswer(stdout: string, what: string): RegistryCredentials {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new RegistryError('UNAUTHORIZED', `${what}: answered something that is not JSON`);
  }
  const answer = (doc !== null && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
  const { Username: username, Secret: secret } = answer;
  if (typeof username !== 'string' || typeof secret !== 'string' || secret === '') {
    throw new RegistryError('UNAUTHORIZED', `${what}: the answer lacks a string Username and a non-empty Secret`);
  }
  return username === IDENTITY_TOKEN_USERNAME || username === ''
    ? { username: IDENTITY_TOKEN_USERNAME, password: '', identityToken: secret }
    : { username, password: secret };
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line || '(no output)';
}

interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly spawnError?: NodeJS.ErrnoException;
}

function run(program: string, input: string, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    // Its own process group, so that a timeout kills whatever the helper started too (a shell
    // script's children keep its output open).
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let spawnError: NodeJS.ErrnoException | undefined;
    let settled = false;
    const finish = (code: number | null, timedOut: boolean): void => {
      if (settled) {
        return;
      }
      settled = true;
      clearTimeout(timer);
      const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');
      resolve({ code, stdout: text(out), stderr: text(err), timedOut, ...(spawnError === undefined ? {} : { spawnError }) });
    };
    const killGroup = (): void => {
      try {
        process.kill(-(child.pid ?? 0), 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      killGroup();
      finish(null, true);
    }, timeoutMs);
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_HELPER_OUTPUT_BYTES) {
        into.push(chunk);
      } else {
        killGroup();
      }
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError = e;
      finish(null, false);
    });
    // A helper that exits without reading stdin makes the write fail with EPIPE: its exit code says what happened.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    child.on('close', (code) => finish(code, false));
  });
}
