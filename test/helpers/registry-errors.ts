import { RegistryError } from '../../services/common/errors.ts';

/** The `RegistryError` a call rejects with; fails the test when it succeeds or throws anything else. */
export async function rejection(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RegistryError) {
      return err;
    }
    throw err;
  }
  throw new Error('expected a RegistryError, the call succeeded');
}
