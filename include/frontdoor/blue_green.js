import cf from 'cloudfront';

// Blue/green front door: CloudFront Function, JavaScript runtime 2.0, associated with
// the distribution's viewer-request AND viewer-response events, reading the
// KeyValueStore associated with it.
//
// The store holds colours and numbers only. Key "routing", the release's split:
//   {"stable": "blue", "new": "green", "weight": 10, "epoch": 7}
// Key "live", the colour that last served every viewer, written by the pipeline only
// once such a change served at the edge (or by a rollback): "blue".
// The function maps a colour to one of the distribution's own origins by id
// (ORIGIN_IDS), so no value in the store can send a viewer anywhere else.
//
// Each viewer draws a bucket 0..99 once per epoch, kept in the bg-route cookie as
// "<epoch>.<bucket>": buckets below the weight go to the new colour, the others to
// the stable one. So a viewer stays on its colour while the weight holds, only
// stable viewers move when the weight rises, and a new epoch (a rollback, a new
// release) re-draws every viewer at once. Weight 0 sends everyone to stable
// whatever their cookie says.
//
// A routing key that is absent or unusable in any field (not JSON, an unknown or
// repeated colour, a weight that is not an integer percentage, an epoch that is not
// an integer) is not half-applied: every viewer goes to the "live" key's colour, or,
// when that key is unusable too, to BUILT_IN_LIVE. Routing headers a viewer sends
// are dropped first: only this function sets them.

const kvs = cf.kvs();
const ROUTING_KEY = 'routing';
const LIVE_KEY = 'live';
// The last resort, in code so that no write to the store can change it: the colour
// production was created with (the default cache behaviour's origin).
const BUILT_IN_LIVE = 'blue';
// The distribution's origin of each colour, by its Id in the template's Origins.
const ORIGIN_IDS = { blue: 'blue', green: 'green' };
const COLOURS = ['blue', 'green'];
const COOKIE = 'bg-route';
const COLOUR_HEADER = 'x-bg-colour';
const ASSIGN_HEADER = 'x-bg-assign';
const ROUTING_HEADERS = [COLOUR_HEADER, ASSIGN_HEADER];
const MAX_EPOCH = 999999999999999;
const ASSIGNMENT = /^[0-9]{1,15}\.[0-9]{1,2}$/;
const PROBE_PATH = '/__frontdoor';

function isColour(value) {
    return typeof value === 'string' && COLOURS.indexOf(value) >= 0;
}

function isInteger(value, low, high) {
    return typeof value === 'number' && Number.isInteger(value) && value >= low && value <= high;
}

async function readRouting() {
    let routing;
    try {
        routing = await kvs.get(ROUTING_KEY, { format: 'json' });
    } catch (err) {
        return null;
    }
    if (!routing || typeof routing !== 'object' || !isColour(routing.stable) || !isColour(routing.new)
        || routing.new === routing.stable || !isInteger(routing.weight, 0, 100)
        || !isInteger(routing.epoch, 0, MAX_EPOCH)) {
        return null;
    }
    return { stable: routing.stable, new: routing.new, weight: routing.weight, epoch: String(routing.epoch) };
}

async function lastLive() {
    let colour;
    try {
        colour = await kvs.get(LIVE_KEY);
    } catch (err) {
        colour = null;
    }
    return isColour(colour) ? { colour: colour, source: 'live-key' } : { colour: BUILT_IN_LIVE, source: 'built-in' };
}

function cookieBucket(request, epoch) {
    const cookie = request.cookies && request.cookies[COOKIE];
    if (!cookie || typeof cookie.value !== 'string') {
        return null;
    }
    const parts = cookie.value.split('.');
    if (parts.length !== 2 || parts[0] !== epoch || !/^[0-9]{1,2}$/.test(parts[1])) {
        return null;
    }
    return Number(parts[1]);
}

function probe(routing, live) {
    const body = routing ? {
        stable: routing.stable, new: routing.new, weight: routing.weight, epoch: routing.epoch,
    } : {
        stable: live.colour, new: COLOURS[1 - COLOURS.indexOf(live.colour)], weight: 0, epoch: null,
        fallback: live.source,
    };
    return {
        statusCode: 200,
        statusDescription: 'OK',
        headers: {
            'content-type': { value: 'application/json' },
            'cache-control': { value: 'no-store' },
        },
        body: JSON.stringify(body),
    };
}

async function viewerRequest(event) {
    const request = event.request;
    for (let i = 0; i < ROUTING_HEADERS.length; i++) {
        delete request.headers[ROUTING_HEADERS[i]];
    }
    const routing = await readRouting();
    const live = routing === null ? await lastLive() : null;
    if (request.uri === PROBE_PATH) {
        return probe(routing, live);
    }
    let colour = live && live.colour;
    if (routing !== null) {
        let bucket = cookieBucket(request, routing.epoch);
        if (bucket === null) {
            bucket = Math.floor(Math.random() * 100);
        }
        colour = routing.weight > 0 && bucket < routing.weight ? routing.new : routing.stable;
        request.headers[ASSIGN_HEADER] = { value: routing.epoch + '.' + bucket };
    }
    cf.selectRequestOriginById(ORIGIN_IDS[colour]);
    request.headers[COLOUR_HEADER] = { value: colour };
    return request;
}

function viewerResponse(event) {
    const response = event.response;
    const headers = event.request.headers || {};
    const colour = headers[COLOUR_HEADER] && headers[COLOUR_HEADER].value;
    if (isColour(colour)) {
        response.headers[COLOUR_HEADER] = { value: colour };
    }
    const assigned = headers[ASSIGN_HEADER] && headers[ASSIGN_HEADER].value;
    const current = event.request.cookies && event.request.cookies[COOKIE];
    if (typeof assigned === 'string' && ASSIGNMENT.test(assigned) && !(current && current.value === assigned)) {
        response.cookies[COOKIE] = {
            value: assigned,
            attributes: 'Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=86400',
        };
    }
    return response;
}

async function handler(event) {
    if (event.context && event.context.eventType === 'viewer-response') {
        return viewerResponse(event);
    }
    return viewerRequest(event);
}
