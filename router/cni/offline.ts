// What the installed plugin answers by itself. VERSION never needs the daemon
// (podman asks before every ADD and DEL); the other commands fall back to
// this when the daemon cannot be reached. The C shim (cni/shim.c) implements
// the same table; the e2e tests run both against it.
//
//   VERSION  the supported versions, always local
//   ADD      error 11 "try again later"
//   CHECK    error 11
//   GC       error 11
//   DEL      park the request in <runDir>/cni-pending/ and succeed (error 5 if it cannot be parked)
//   STATUS   error 50 "not available"
//   other    error 4 (missing or unknown CNI_COMMAND)

import { CniCode, CniError, errorResult, oneLine } from './errors.js';
import { peekConfig, type CniOutput, type CniRequest } from './protocol.js';
import { isSupportedVersion, LATEST_VERSION, versionResult } from './version.js';

export function localVersionAnswer(stdin: string): CniOutput {
  return { stdout: JSON.stringify(versionResult(peekConfig(stdin).cniVersion)), exitCode: 0 };
}

/** A CNI error answered by the plugin itself, in the config's version when it names one we speak. */
export function localError(code: number, msg: string, stdin: string, details = ''): CniOutput {
  const v = peekConfig(stdin).cniVersion;
  return { stdout: JSON.stringify(errorResult(new CniError(code, msg, details), isSupportedVersion(v) ? v : LATEST_VERSION)), exitCode: 1 };
}

export async function offlineAnswer(req: CniRequest, runDir: string, why: string): Promise<CniOutput> {
  const cmd = req.env.CNI_COMMAND ?? '';
  const fail = (code: number, msg: string, details = ''): CniOutput => localError(code, msg, req.config, details);
  switch (cmd) {
    case 'VERSION':
      return localVersionAnswer(req.config);
    case 'ADD':
    case 'CHECK':
    case 'GC':
      return fail(CniCode.TRY_AGAIN_LATER, `meshnet daemon not reachable: ${why}`, 'start it with "meshnet launch"');
    case 'STATUS':
      return fail(CniCode.NOT_AVAILABLE, `meshnet daemon not reachable: ${why}`);
    case 'DEL':
      try {
        // Loaded here: the Node plugin pays for each module it imports at every start.
        const { parkPendingDel } = await import('./pending.js');
        await parkPendingDel(runDir, req);
        return { stdout: '', exitCode: 0 };
      } catch (err) {
        return fail(CniCode.IO_FAILURE, `meshnet daemon not reachable (${why}) and the DEL could not be parked: ${oneLine(err)}`);
      }
    default:
      return fail(CniCode.INVALID_ENV, cmd === '' ? 'CNI_COMMAND is missing' : `unknown CNI_COMMAND=${JSON.stringify(cmd)}`);
  }
}
