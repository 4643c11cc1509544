// Validation of what callers (CNI, control API) hand to the allocator.
// The rules are CNI's own (libcni ValidateContainerID / ValidateInterfaceName),
// so an ID the runtime accepts is never refused here and vice versa.

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const MAX_CONTAINER_ID_LENGTH = 1024;

/** The container ID under which `meshnet expose` allocates the host's own address. */
export const HOST_CONTAINER_ID = 'meshnet.host';

export function containerIdError(id: unknown): string | undefined {
  if (typeof id !== 'string' || id.length === 0) return 'container ID is empty';
  if (id.length > MAX_CONTAINER_ID_LENGTH) return `container ID is longer than ${MAX_CONTAINER_ID_LENGTH} characters`;
  if (!CONTAINER_ID.test(id)) {
    return `container ID "${id.slice(0, 80)}" must start with a letter or digit and contain only letters, digits, "_", "." and "-"`;
  }
  return undefined;
}

export function interfaceNameError(name: unknown): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'interface name is empty';
  if (name.length > 15) return `interface name "${name.slice(0, 40)}" is longer than 15 characters`;
  if (name === '.' || name === '..') return `interface name "${name}" is not allowed`;
  if (/[/:\s]/.test(name)) return `interface name "${name}" contains "/", ":" or whitespace`;
  return undefined;
}
