// ESM: named imports, or the default import for the whole API.
import sockstate, { connectionState } from 'sockstate';
import * as net from 'node:net';

console.log(connectionState(new net.Socket()).status, sockstate.supported);
