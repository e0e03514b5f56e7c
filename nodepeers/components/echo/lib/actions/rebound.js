'use strict';
// Asks the platform to deliver the message again later: emits `rebound` with a reason and no data.
exports.process = async function process(msg) {
    await this.emit('rebound', new Error(`try later ${msg.body && msg.body.i}`));
};
