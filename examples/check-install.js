// Is the native probe loaded here, and if not, why and how to fix it?
const { supported, unsupportedReason } = require('sockstate');

if (supported) console.log('sockstate: native probe loaded');
else console.log(`sockstate: answering from socket flags only. ${unsupportedReason}`);
