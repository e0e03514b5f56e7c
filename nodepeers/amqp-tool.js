'use strict';
// Test tool: publish one message with amqplib (the Node sailor's AMQP client), or read one, as JSON.
//   node amqp-tool.js publish URL QUEUE   stdin: {"headers": {...}, "bodyB64": "...", "deep": N?,
//                                                "properties": {...}?}
//     headers may hold amqplib's typed values, e.g. {"!": "timestamp", "value": 1764630000000};
//     "deep": N adds the header x-deep nested N tables deep; non-integer numbers go out as doubles.
//   node amqp-tool.js get URL QUEUE TIMEOUT_MS   prints {"headers", "bodyB64"} of one message (acked)
const amqp = require('amqplib');

function readStdin() {
    return new Promise((resolve) => {
        let text = '';
        process.stdin.on('data', (c) => { text += c; });
        process.stdin.on('end', () => resolve(text));
    });
}

async function main() {
    const [cmd, url, queue, timeout] = process.argv.slice(2);
    const conn = await amqp.connect(url);
    try {
        if (cmd === 'publish') {
            const spec = JSON.parse(await readStdin());
            const headers = Object.assign({}, spec.headers);
            if (spec.deep) {
                let nested = { leaf: 1 };
                for (let i = 1; i < spec.deep; i += 1) { nested = { n: nested }; }
                headers['x-deep'] = nested;
            }
            const ch = await conn.createConfirmChannel();
            const props = Object.assign({ headers, contentType: 'application/json' }, spec.properties || {});
            await new Promise((resolve, reject) => ch.sendToQueue(queue, Buffer.from(spec.bodyB64, 'base64'),
                props, (err) => (err ? reject(err) : resolve())));
            await ch.close();
        } else if (cmd === 'get') {
            const ch = await conn.createChannel();
            const deadline = Date.now() + Number(timeout || 30000);
            for (;;) {
                const msg = await ch.get(queue, { noAck: true });
                if (msg) {
                    process.stdout.write(JSON.stringify({ headers: msg.properties.headers,
                        bodyB64: msg.content.toString('base64') }) + '\n');
                    break;
                }
                if (Date.now() > deadline) { throw new Error(`no message on ${queue}`); }
                await new Promise((r) => setTimeout(r, 50));
            }
            await ch.close();
        } else {
            throw new Error(`unknown command ${cmd}`);
        }
    } finally {
        await conn.close();
    }
}

main().catch((err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });
