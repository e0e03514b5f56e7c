'use strict';
// The same job as the connector's batchMeterUsage action, written the way a Node developer
// would with the aws-sdk (v2) npm package: split into calls of 25 records, let the SDK retry
// throttling / 5xx / network errors, re-submit UnprocessedRecords, emit one result per message.
process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1';
const http = require('http');
const https = require('https');
const AWS = require('aws-sdk');

const MAX_BATCH = 25;
const MAX_UNPROCESSED_ROUNDS = 5;
let cached = null;

function client(cfg) {
    const key = [cfg.accessKeyId, cfg.region, cfg.endpointUrl, cfg.sessionToken].join('|');
    if (cached && cached.key === key) {
        return cached.client;
    }
    const endpoint = cfg.endpointUrl || undefined;
    const isHttp = endpoint && endpoint.startsWith('http:');
    const agent = isHttp ? new http.Agent({ keepAlive: true, maxSockets: 16 })
        : new https.Agent({ keepAlive: true, maxSockets: 16 });
    const c = new AWS.MarketplaceMetering({
        region: cfg.region || 'us-east-1',
        endpoint,
        credentials: new AWS.Credentials(cfg.accessKeyId, cfg.secretAccessKey, cfg.sessionToken || null),
        maxRetries: 12,
        retryDelayOptions: { base: 50 },
        httpOptions: { agent, connectTimeout: 5000, timeout: 30000 }
    });
    cached = { key, client: c };
    return c;
}

function toSdkRecord(rec) {
    const out = Object.assign({}, rec);
    if (typeof out.Timestamp === 'number') {
        // epoch seconds or milliseconds, as the connector accepts
        out.Timestamp = new Date(out.Timestamp > 1e11 ? out.Timestamp : out.Timestamp * 1000);
    } else if (typeof out.Timestamp === 'string') {
        out.Timestamp = new Date(out.Timestamp);
    }
    return out;
}

function plainResult(r) {
    const rec = Object.assign({}, r.UsageRecord);
    if (rec.Timestamp instanceof Date) {
        rec.Timestamp = rec.Timestamp.getTime() / 1000;
    }
    return { UsageRecord: rec, MeteringRecordId: r.MeteringRecordId, Status: r.Status };
}

async function meterChunk(api, productCode, records) {
    let pending = records;
    const results = [];
    for (let round = 0; round <= MAX_UNPROCESSED_ROUNDS && pending.length; round += 1) {
        const params = { UsageRecords: pending };
        if (productCode) {
            params.ProductCode = productCode;
        }
        const res = await api.batchMeterUsage(params).promise();
        results.push(...(res.Results || []).map(plainResult));
        pending = res.UnprocessedRecords || [];
    }
    if (pending.length) {
        throw new Error(pending.length + ' records still unprocessed after retries');
    }
    return results;
}

exports.process = async function batchMeterUsage(msg, cfg) {
    const body = msg.body || {};
    if (!Array.isArray(body.UsageRecords)) {
        throw new Error('UsageRecords must be a list');
    }
    const api = client(cfg);
    const records = body.UsageRecords.map(toSdkRecord);
    const results = [];
    for (let i = 0; i < records.length; i += MAX_BATCH) {
        results.push(...await meterChunk(api, body.ProductCode, records.slice(i, i + MAX_BATCH)));
    }
    const counts = {};
    results.forEach((r) => { counts[r.Status] = (counts[r.Status] || 0) + 1; });
    return { body: { Results: results, counts, total: results.length } };
};
