'use strict';
// Emits the incoming body unchanged as one data message and awaits the publish (so the sailor
// acks the input only after the broker confirmed the output). {"fail": true} in the body makes
// it throw "requested failure <i>" instead (error message + reject).
exports.process = async function process(msg) {
    if (msg.body && msg.body.fail) {
        throw new Error(`requested failure ${msg.body.i}`);
    }
    await this.emit('data', { body: msg.body });
};
