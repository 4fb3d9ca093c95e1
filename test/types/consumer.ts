// Compiled against the emitted lib/index.d.ts by test/package.test.ts.
import * as net from 'node:net';
import {
  type ConnectionState,
  type ConnectionStatus,
  connectionState,
  SockstateError,
  type SocketError,
  supported,
  takeSocketError,
  type TcpInfo,
  tcpInfo,
  type TcpStateName,
} from 'sockstate';

const socket = new net.Socket();
const state: ConnectionState = connectionState(socket);
const status: ConnectionStatus = state.status;
const tcpState: TcpStateName | null = state.tcpState;
const flag: boolean = supported;
if (flag) {
  const info: TcpInfo = tcpInfo(3);
  const rtt: number = info.rtt;
  const acked: bigint | undefined = info.bytesAcked;
  const err: SocketError | null = takeSocketError(socket);
  if (err) {
    const code: string = err.code;
    const errno: number = err.errno;
    console.log(code, errno, rtt, acked);
  }
}
const e = new SockstateError('x', 'EBADF', -9, 'getsockopt');
console.log(status, tcpState, e.code satisfies string);
// @ts-expect-error a string is not a Target
connectionState('3');
