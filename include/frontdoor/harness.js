// Runs a CloudFront Function file under Node with a stand-in for the 'cloudfront'
// module: one JSON request per stdin line, one JSON answer per stdout line.
//   in:  {"event": {...}, "kvs": {"key": "value", ...}, "random": 0.42 (optional)}
//   out: {"result": <request or response>, "originId": <selectRequestOriginById's id> | null}
//        or {"error": "..."}
// The file is used as is, but for its `import cf from 'cloudfront';` line, which
// binds the stand-in instead (Node has no 'cloudfront' module). The stand-in offers
// selectRequestOriginById only: a function that names an origin by host
// (updateRequestOrigin) fails here.
'use strict';
const fs = require('fs');
const readline = require('readline');

const source = fs.readFileSync(process.argv[2], 'utf8');
const IMPORT = /^import cf from 'cloudfront';$/m;
if (!IMPORT.test(source)) {
    throw new Error(process.argv[2] + " does not import cf from 'cloudfront'");
}

const state = { kvs: {}, originId: null, random: null };
const standIn = {
    kvs() {
        return {
            async get(key, options) {
                if (!Object.prototype.hasOwnProperty.call(state.kvs, key)) {
                    throw new Error('key ' + key + ' not found');
                }
                const value = state.kvs[key];
                return options && options.format === 'json' ? JSON.parse(value) : value;
            },
            async exists(key) {
                return Object.prototype.hasOwnProperty.call(state.kvs, key);
            },
        };
    },
    selectRequestOriginById(id) {
        if (typeof id !== 'string' || id === '') {
            throw new TypeError('selectRequestOriginById needs an origin id, got ' + JSON.stringify(id));
        }
        state.originId = id;
    },
};
const math = Object.create(Math);
math.random = () => (state.random === null ? Math.random() : state.random);
const handler = new Function('__cf', 'Math', source.replace(IMPORT, 'const cf = __cf;') + '\nreturn handler;')(
    standIn, math);

async function run(line) {
    const call = JSON.parse(line);
    state.kvs = call.kvs || {};
    state.originId = null;
    state.random = typeof call.random === 'number' ? call.random : null;
    try {
        const result = await handler(call.event);
        return { result, originId: state.originId };
    } catch (err) {
        return { error: String(err && err.stack || err) };
    }
}

let queue = Promise.resolve();
readline.createInterface({ input: process.stdin }).on('line', (line) => {
    queue = queue.then(async () => {
        process.stdout.write(JSON.stringify(await run(line)) + '\n');
    });
});
