'use strict';
// Exercises the non-data events, driven by the input body:
//   reply: true    -> httpReply {statusCode: 201, body: "created <i>", headers: {content-type}}
//   snapshot: true -> snapshot {a: i}, then updateSnapshot {b: i}
//   route: "K"     -> the data message carries header x-eio-routing-key: K
// and always one data message {body: {i, snapshot: <snapshot argument>}}.
exports.process = async function process(msg, cfg, snapshot) {
    const b = msg.body || {};
    if (b.reply) {
        await this.emit('httpReply', {
            statusCode: 201, body: `created ${b.i}`, headers: { 'content-type': 'text/plain' }
        });
    }
    if (b.snapshot) {
        await this.emit('snapshot', { a: b.i });
        await this.emit('updateSnapshot', { b: b.i });
    }
    const headers = b.route ? { 'x-eio-routing-key': b.route } : {};
    await this.emit('data', { body: { i: b.i, snapshot }, headers });
};
