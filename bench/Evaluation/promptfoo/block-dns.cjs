// promptfoo sends telemetry even when told not to; with no network here each lookup would stall until it
// times out. Fail every lookup except loopback at once, so the benchmark measures evaluation only.
const dns = require('node:dns');
const loopback = (host) => host === 'localhost' || /^127\./.test(host) || host === '::1';
const lookup = dns.lookup;
dns.lookup = function (host, options, callback) {
  if (typeof options === 'function') { callback = options; options = {}; }
  if (loopback(host)) return lookup.call(dns, host, options, callback);
  const error = Object.assign(new Error(`lookup of ${host} blocked by the benchmark`), { code: 'ENOTFOUND', hostname: host });
  process.nextTick(() => callback(error));
};
const promises = dns.promises.lookup;
dns.promises.lookup = (host, options) => loopback(host)
  ? promises.call(dns.promises, host, options)
  : Promise.reject(Object.assign(new Error(`lookup of ${host} blocked by the benchmark`), { code: 'ENOTFOUND', hostname: host }));
