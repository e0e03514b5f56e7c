'use strict';
// Emits one data message whose body is what process() received: the whole message, the cfg and
// the snapshot. Interop tests compare it with what the previous step published.
exports.process = async function process(msg, cfg, snapshot) {
    await this.emit('data', { body: { received: msg, cfg, snapshot } });
};
