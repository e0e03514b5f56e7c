'use strict';
// Deterministic usage generation shared by the export trigger. The Python flow harness
// (spec/support/flow.py) computes the expected records from the same request independently.
//
// Request (the body of one message on this step's queue):
//   runId        string, prefix of every emitted message id
//   format       "batch" (BatchMeterUsage input, default) | "meter" (MeterUsage input)
//                | "resolve" (ResolveCustomer input, tokens given in `tokens`)
//   productCode  product of every record
//   from, count  emit the messages with indexes from .. from+count-1
//   recordsPerMessage  records in each batch message (format "batch")
//   customers    customer identifiers; dimensions; hours (epoch seconds, hour-aligned)
//   invalidEvery every message whose index % invalidEvery == invalidEvery-1 is invalid (0 = none)
//   tokens       registration tokens (format "resolve"), one message per token
//
// Record slot j (global, j = index * recordsPerMessage + r) maps to a unique
// (hour, dimension, customer): hour = hours[j % H], dimension = dimensions[floor(j / H) % D],
// customer = customers[floor(j / (H * D))]; quantity = (j * 7919) % 1000 + 1.

const INVALID_KINDS = [
    'quantity-wrong-type', 'missing-dimension', 'garbage-body', 'negative-quantity',
    'both-customer-ids', 'records-not-a-list', 'timestamp-garbage', 'too-long-dimension',
    'string-body', 'misspelled-field'
];

function slotRecord(req, j) {
    const H = req.hours.length;
    const D = req.dimensions.length;
    const c = Math.floor(j / (H * D));
    if (c >= req.customers.length) {
        throw new Error('not enough customers for record slot ' + j);
    }
    return {
        CustomerIdentifier: req.customers[c],
        Dimension: req.dimensions[Math.floor(j / H) % D],
        Quantity: (j * 7919) % 1000 + 1,
        Timestamp: req.hours[j % H]
    };
}

function isInvalid(req, index) {
    const every = req.invalidEvery || 0;
    return every > 0 && index % every === every - 1;
}

function invalidKind(req, index) {
    return INVALID_KINDS[Math.floor(index / req.invalidEvery) % INVALID_KINDS.length];
}

function invalidBody(req, index, records) {
    const kind = invalidKind(req, index);
    const first = Object.assign({}, records[0]);
    switch (kind) {
        case 'quantity-wrong-type':
            first.Quantity = 'ten';
            return { ProductCode: req.productCode, UsageRecords: [first].concat(records.slice(1)) };
        case 'missing-dimension':
            delete first.Dimension;
            return { ProductCode: req.productCode, UsageRecords: [first].concat(records.slice(1)) };
        case 'garbage-body':
            return { garbage: '\u0000\u00ff not usage', n: index };
        case 'negative-quantity':
            first.Quantity = -5;
            return { ProductCode: req.productCode, UsageRecords: [first].concat(records.slice(1)) };
        case 'both-customer-ids':
            first.CustomerAWSAccountId = '111122223333';
            return { ProductCode: req.productCode, UsageRecords: [first].concat(records.slice(1)) };
        case 'records-not-a-list':
            return { ProductCode: req.productCode, UsageRecords: 'all of them' };
        case 'timestamp-garbage':
            first.Timestamp = 'yesterday-ish';
            return { ProductCode: req.productCode, UsageRecords: [first].concat(records.slice(1)) };
        case 'too-long-dimension':
            first.Dimension = 'd'.repeat(300);
            return { ProductCode: req.productCode, UsageRecords: [first].concat(records.slice(1)) };
        case 'string-body':
            return 'just a string, not an object';
        case 'misspelled-field':
        default:
            first.Quantiy = first.Quantity;
            delete first.Quantity;
            return { ProductCode: req.productCode, UsageRecords: [first].concat(records.slice(1)) };
    }
}

function batchMessage(req, index) {
    const k = req.recordsPerMessage || 1;
    const records = [];
    for (let r = 0; r < k; r += 1) {
        records.push(slotRecord(req, index * k + r));
    }
    if (isInvalid(req, index)) {
        return { body: invalidBody(req, index, records), kind: invalidKind(req, index) };
    }
    return { body: { ProductCode: req.productCode, UsageRecords: records }, kind: 'valid' };
}

function meterMessage(req, index) {
    const rec = slotRecord(req, index);
    return {
        body: {
            ProductCode: req.productCode,
            Timestamp: rec.Timestamp,
            UsageDimension: rec.Dimension,
            UsageQuantity: rec.Quantity
        },
        kind: 'valid'
    };
}

function resolveMessage(req, index) {
    return { body: { RegistrationToken: req.tokens[index] }, kind: 'valid' };
}

function buildMessage(req, index) {
    const format = req.format || 'batch';
    if (format === 'batch') {
        return batchMessage(req, index);
    }
    if (format === 'meter') {
        return meterMessage(req, index);
    }
    if (format === 'resolve') {
        return resolveMessage(req, index);
    }
    throw new Error('unknown format ' + format);
}

module.exports = { buildMessage, slotRecord, isInvalid, invalidKind, INVALID_KINDS };
