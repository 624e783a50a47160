import cf from 'cloudfront';

// Blue/green front door: CloudFront Function, JavaScript runtime 2.0, associated with
// the distribution's viewer-request AND viewer-response events, reading the
// KeyValueStore associated with it.
//
// The KVS key "routing" holds the release's split as JSON:
//   {"stable": "blue", "new": "green", "weight": 10, "epoch": 7,
//    "origins": {"blue": "<blue branch domain>", "green": "<green branch domain>"}}
// Each viewer draws a bucket 0..99 once per epoch, kept in the bg-route cookie as
// "<epoch>.<bucket>": buckets below the weight go to the new colour, the others to
// the stable one. So a viewer stays on its colour while the weight holds, only
// stable viewers move when the weight rises, and a new epoch (a rollback, a new
// release) re-draws every viewer at once. Weight 0 sends everyone to stable
// whatever their cookie says. Without a usable routing key every viewer goes to
// the distribution's default origin, tagged "stable".

const kvs = cf.kvs();
const ROUTING_KEY = 'routing';
const COOKIE = 'bg-route';
const COLOUR_HEADER = 'x-bg-colour';
const ASSIGN_HEADER = 'x-bg-assign';
const PROBE_PATH = '/__frontdoor';
const COLOURS = ['blue', 'green'];

async function readRouting() {
    let routing;
    try {
        routing = await kvs.get(ROUTING_KEY, { format: 'json' });
    } catch (err) {
        return null;
    }
    if (!routing || COLOURS.indexOf(routing.stable) < 0) {
        return null;
    }
    const weight = Number(routing.weight);
    const usable = COLOURS.indexOf(routing.new) >= 0 && routing.new !== routing.stable
        && Number.isInteger(weight) && weight >= 0 && weight <= 100;
    return {
        stable: routing.stable,
        new: usable ? routing.new : routing.stable,
        weight: usable ? weight : 0,
        epoch: String(routing.epoch === undefined ? '' : routing.epoch),
        origins: routing.origins || {},
    };
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

async function viewerRequest(event) {
    const request = event.request;
    const routing = await readRouting();
    if (request.uri === PROBE_PATH) {
        return {
            statusCode: 200,
            statusDescription: 'OK',
            headers: {
                'content-type': { value: 'application/json' },
                'cache-control': { value: 'no-store' },
            },
            body: JSON.stringify(routing ? {
                stable: routing.stable, new: routing.new, weight: routing.weight, epoch: routing.epoch,
            } : { stable: null }),
        };
    }
    if (routing === null) {
        request.headers[COLOUR_HEADER] = { value: 'stable' };
        return request;
    }
    let bucket = cookieBucket(request, routing.epoch);
    if (bucket === null) {
        bucket = Math.floor(Math.random() * 100);
    }
    const colour = routing.weight > 0 && bucket < routing.weight ? routing.new : routing.stable;
    const domain = routing.origins[colour];
    if (domain) {
        cf.updateRequestOrigin({ domainName: domain });
    }
    request.headers[COLOUR_HEADER] = { value: colour };
    request.headers[ASSIGN_HEADER] = { value: routing.epoch + '.' + bucket };
    return request;
}

function viewerResponse(event) {
    const response = event.response;
    const assigned = event.request.headers[ASSIGN_HEADER];
    const colour = event.request.headers[COLOUR_HEADER];
    if (colour) {
        response.headers[COLOUR_HEADER] = { value: colour.value };
    }
    const current = event.request.cookies && event.request.cookies[COOKIE];
    if (assigned && !(current && current.value === assigned.value)) {
        response.cookies[COOKIE] = {
            value: assigned.value,
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
