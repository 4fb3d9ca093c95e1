// Compiled against the emitted lib/*.d.ts by test/package.test.ts, for
// every target TypeScript allows and without skipLibCheck.
import * as net from 'node:net';
import sockstate, {
  type ConnectionState,
  type ConnectionStatus,
  connectionState,
  SockstateError,
  type SockstateErrorCode,
  type SocketError,
  supported,
  type SystemErrorCode,
  takeSocketError,
  type TcpInfo,
  tcpInfo,
  type TcpStateName,
  unsupportedReason,
} from 'sockstate';

const socket = new net.Socket();
const state: ConnectionState = connectionState(socket);
const status: ConnectionStatus = state.status;
const tcpState: TcpStateName | null = state.tcpState;
const flag: boolean = supported;
const reason: string | null = unsupportedReason;
if (flag) {
  const info: TcpInfo = tcpInfo(3);
  const rtt: number = info.rtt;
  const acked: bigint | undefined = info.bytesAcked;
  const err: SocketError | null = takeSocketError(socket);
  if (err) {
    const code: SockstateErrorCode = err.code;
    const errno: number = err.errno;
    console.log(code, errno, rtt, acked);
  }
}

// The default import is the whole API.
const viaDefault: ConnectionState = sockstate.connectionState(socket);
const sameFlag: boolean = sockstate.supported;

// `code` is a closed union: sockstate's own codes and errno names narrow.
function describe(e: unknown): string {
  if (!(e instanceof SockstateError)) return 'other';
  switch (e.code) {
    case 'ERR_SOCKSTATE_UNSUPPORTED':
      return 'no addon';
    case 'ECONNRESET':
    case 'EPIPE':
      return `reset (${e.syscall ?? ''})`;
    default: {
      const rest: SockstateErrorCode = e.code;
      return rest;
    }
  }
}
const sys: SystemErrorCode = 'EOPNOTSUPP';
// @ts-expect-error not an errno name nor a sockstate code
const typo: SockstateErrorCode = 'ERR_SOCKSTATE_UNSUPORTED';
const e = new SockstateError('x', 'EBADF', -9, 'getsockopt');
console.log(status, tcpState, reason, viaDefault, sameFlag, describe(e), sys, typo, e.code satisfies string);
// @ts-expect-error a string is not a Target
connectionState('3');
