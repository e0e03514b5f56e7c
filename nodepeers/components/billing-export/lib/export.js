'use strict';
// One export request in -> `count` data messages out, each awaited (published and confirmed).
// Every emitted message carries a deterministic id and, in its JSON headers, the index, the
// kind (valid / which invalid case) and the emit time in ms, so step 3 can measure latency
// (the platform's passthrough carries this message along the flow).
const { buildMessage } = require('./usage.js');

exports.process = async function exportUsage(msg) {
    const req = msg.body || {};
    const from = req.from || 0;
    const count = req.count || 0;
    for (let index = from; index < from + count; index += 1) {
        const built = buildMessage(req, index);
        await this.emit('data', {
            id: req.runId + '-' + index,
            body: built.body,
            headers: {
                'x-e2e-index': index,
                'x-e2e-kind': built.kind,
                'x-e2e-emitted-at': Date.now()
            },
            attachments: {}
        });
    }
};
