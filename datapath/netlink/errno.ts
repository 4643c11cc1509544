// errno numbers and messages from Node's own tables (os.constants.errno and
// util.getSystemErrorMap), so they always match the running platform.

import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

export const constants = osConstants.errno;

const messages = getSystemErrorMap();

/** strerror(3) for a positive errno. */
export function strerror(errno: number): string {
  return messages.get(-Math.abs(errno))?.[1] ?? `errno ${errno}`;
}
