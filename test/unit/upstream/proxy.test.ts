// Which proxy an upstream request goes through (src/upstream/proxy.ts), from the environment as curl and Node read it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { proxyAuthorization, proxyFor, redactProxy } from '../../../src/upstream/proxy.ts';

const at = (url: string, env: Record<string, string>) => proxyFor(new URL(url), env)?.href;

test('https URLs take HTTPS_PROXY, http ones HTTP_PROXY (the lower-case name first); none set is direct', () => {
  const env = { HTTPS_PROXY: 'http://secure:3128', http_proxy: 'http://plain:3128', HTTP_PROXY: 'http://ignored:3128' };
  assert.equal(at('https://cache.nixos.org/nix-cache-info', env), 'http://secure:3128/');
  assert.equal(at('http://cache.example/nix-cache-info', env), 'http://plain:3128/');
  assert.equal(at('https://cache.nixos.org/', {}), undefined);
  assert.equal(at('https://cache.nixos.org/', { https_proxy: 'proxy.corp:8080' }), 'http://proxy.corp:8080/', 'a bare host:port is an http proxy');
});

test('NO_PROXY: *, a host and its subdomains (with or without a leading . or *.), IP addresses, ports', () => {
  const proxy = { https_proxy: 'http://p:1', http_proxy: 'http://p:1' };
  const direct = (url: string, noProxy: string) => at(url, { ...proxy, NO_PROXY: noProxy }) === undefined;
  assert.ok(direct('https://cache.nixos.org/', '*'));
  assert.ok(direct('https://cache.nixos.org/', 'nixos.org'));
  assert.ok(direct('https://cache.nixos.org/', 'other.example, .nixos.org'));
  assert.ok(direct('https://cache.nixos.org/', '*.nixos.org'));
  assert.ok(direct('https://NixOS.org/', 'nixos.org'));
  assert.ok(!direct('https://cache.nixos.org/', 'os.org'), 'a suffix matches at a dot only');
  assert.ok(direct('http://10.0.0.5:8080/', '10.0.0.5'));
  assert.ok(direct('http://[::1]:8080/', '[::1]:8080'));
  assert.ok(direct('http://[::1]:8080/', '::1'), 'a bare IPv6 address, any port');
  assert.ok(!direct('http://[::1]:8080/', '[::1]:9090'));
  assert.ok(direct('https://cache.nixos.org/', 'nixos.org:443'));
  assert.ok(!direct('https://cache.nixos.org/', 'nixos.org:80'), 'another port');
  assert.ok(direct('http://loft.internal/', 'localhost loft.internal'), 'separated by spaces');
  assert.ok(!direct('https://cache.nixos.org/', ''));
  assert.ok(!direct('https://cache.nixos.org/', 'x'));
  assert.equal(at('https://cache.nixos.org/', { ...proxy, no_proxy: 'nixos.org', NO_PROXY: 'x' }), undefined, 'no_proxy first');
});

test('a proxy that is not http:// or not a URL is refused with the variable named; credentials go to Proxy-Authorization and out of logs', () => {
  assert.throws(() => at('https://cache.nixos.org/', { HTTPS_PROXY: 'https://p:443' }), /HTTPS_PROXY must be an http:\/\/ proxy, not https:/);
  assert.throws(() => at('http://cache.example/', { HTTP_PROXY: 'http://[bad' }), /HTTP_PROXY is not a URL/);
  assert.equal(proxyAuthorization(new URL('http://user:p%40ss@p:1')), `Basic ${Buffer.from('user:p@ss').toString('base64')}`);
  assert.equal(proxyAuthorization(new URL('http://p:1')), undefined);
  assert.equal(redactProxy('http://user:secret@p:1'), 'http://user:***@p:1');
});
