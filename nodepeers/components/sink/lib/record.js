'use strict';
// Step 3: record what arrives. One JSON line per message, written synchronously before the
// sailor acks the message, so a line in the file means "delivered to step 3".
const fs = require('fs');

exports.process = async function recordMessage(msg) {
    const file = process.env.E2E_SINK_FILE;
    if (!file) {
        throw new Error('E2E_SINK_FILE is not set');
    }
    const line = JSON.stringify({
        receivedAt: Date.now(),
        id: msg.id,
        body: msg.body,
        headers: msg.headers,
        passthrough: msg.passthrough || {}
    });
    fs.appendFileSync(file, line + '\n');
};
