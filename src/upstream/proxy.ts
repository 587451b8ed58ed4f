import http from 'node:http';

/**
 * The HTTP proxy that requests to upstreams go through, from the environment as curl (and so Nix)
 * and Node read it: `https_proxy`/`HTTPS_PROXY` for https URLs, `http_proxy`/`HTTP_PROXY` for http
 * ones, except the hosts `no_proxy`/`NO_PROXY` lists. A proxy is an `http://` URL, optionally with
 * credentials (sent as Proxy-Authorization: Basic).
 */
export type ProxyEnv = Readonly<Record<string, string | undefined>>;

/** A variable by its lower-case name, or else its upper-case one (as curl reads them). */
function variable(env: ProxyEnv, name: 'https_proxy' | 'http_proxy' | 'no_proxy'): string | undefined {
  return env[name] || env[name.toUpperCase()] || undefined;
}

/** The host (without IPv6 brackets) and port a URL names. */
export function endpointOf(url: URL): { host: string; port: number } {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host, port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80) };
}

/** The proxy for `url`, or undefined when it is reached directly. */
export function proxyFor(url: URL, env: ProxyEnv = process.env): URL | undefined {
  const name = url.protocol === 'https:' ? 'https_proxy' : 'http_proxy';
  const value = variable(env, name);
  if (!value) return undefined;
  if (bypassed(url, variable(env, 'no_proxy') ?? '')) return undefined;
  let proxy: URL;
  try {
    proxy = new URL(value.includes('://') ? value : `http://${value}`);
  } catch {
    throw new Error(`${name.toUpperCase()} is not a URL: ${redactProxy(value)}`);
  }
  if (proxy.protocol !== 'http:') throw new Error(`${name.toUpperCase()} must be an http:// proxy, not ${proxy.protocol}//`);
  return proxy;
}

/**
 * NO_PROXY entries, separated by commas or spaces: `*` (every host), a host name (that host and
 * its subdomains; a leading `.` or `*.` changes nothing), an IP address, each optionally with
 * `:port` (that port only).
 */
function bypassed(url: URL, noProxy: string): boolean {
  const endpoint = endpointOf(url);
  const [host, port] = [endpoint.host.toLowerCase(), String(endpoint.port)];
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    // host, host:port, [v6], [v6]:port; a bare IPv6 address has no port
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    const colon = entry.indexOf(':');
    const single = colon >= 0 && colon === entry.lastIndexOf(':');
    const [name, entryPort] = bracketed ? [bracketed[1]!, bracketed[2]] : single ? [entry.slice(0, colon), entry.slice(colon + 1)] : [entry, undefined];
    const pattern = name.replace(/^\*?\./, '');
    if (entryPort !== undefined && entryPort !== port) continue;
    if (host === pattern || host.endsWith(`.${pattern}`)) return true;
  }
  return false;
}

/** The Proxy-Authorization header for a proxy URL with credentials. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username && !proxy.password) return undefined;
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return `Basic ${Buffer.from(credentials).toString('base64')}`;
}

/** A proxy URL for logs and errors: without its password. */
export function redactProxy(value: string): string {
  return value.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/**
 * Routes fetch() (the narinfo requests) through the environment's proxies too, with Node's own
 * proxy support (as NODE_USE_ENV_PROXY=1 would): NAR downloads and narinfos take the same way.
 * Returns what to log (the proxies in use, or why they are not), and how to undo it.
 */
export function useEnvProxyForFetch(env: ProxyEnv = process.env): { note: string; restore(): void } | undefined {
  const proxies = (['https_proxy', 'http_proxy'] as const).map((n) => variable(env, n)).filter((v): v is string => v !== undefined);
  if (proxies.length === 0) return undefined;
  // The same checks as a NAR download's, at startup: a proxy Loft cannot use is a config error.
  for (const probe of ['https://upstream.invalid', 'http://upstream.invalid']) proxyFor(new URL(probe), env);
  const setGlobal = (http as { setGlobalProxyFromEnv?: (env: ProxyEnv) => () => void }).setGlobalProxyFromEnv;
  const list = [...new Set(proxies)].map(redactProxy).join(', ');
  if (!setGlobal) return { note: `upstream proxies are set (${list}), but this Node.js has no http.setGlobalProxyFromEnv: narinfos are fetched directly (use Node.js 24)`, restore() {} };
  const restore = setGlobal(env);
  const noProxy = variable(env, 'no_proxy');
  return { note: `upstream requests go through ${list}${noProxy ? ` (not for ${noProxy})` : ''}`, restore };
}
