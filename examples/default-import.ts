// TypeScript compiled to CommonJS: the default import is the whole API.
import * as net from 'node:net';
import sockstate, { type ConnectionState, SockstateError } from 'sockstate';

const state: ConnectionState = sockstate.connectionState(new net.Socket());
console.log(state.status, state.source);

try {
  sockstate.tcpInfo(new net.Socket());
} catch (err) {
  // code is a closed union: a misspelt code does not compile.
  if (err instanceof SockstateError && err.code === 'ERR_SOCKSTATE_NO_FD') console.log('no fd yet:', err.code);
}
