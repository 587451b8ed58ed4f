// Debian's nginx serving a folder over https on loopback, with a self-signed certificate for
// `localhost`: an upstream served the way cache.nixos.org serves its files.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freePort, waitFor } from './processes.ts';
import { localhostCert } from './tls.ts';

export interface TlsNginx {
  /** `https://localhost:PORT` */
  url: string;
  /** The certificate to trust. */
  ca: Buffer;
  stop(): Promise<void>;
}

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

/** Why nginx cannot be run here, or undefined when it can (for skipUnless). */
export function nginxUnavailable(): string | undefined {
  return NGINX ? undefined : 'nginx is not installed (apt-get install -y nginx-light)';
}

/** Serves `root`; `dir` holds its configuration, certificate and logs. */
export async function startTlsNginx(root: string, dir: string): Promise<TlsNginx> {
  if (!NGINX) throw new Error(nginxUnavailable());
  const { key, cert } = localhostCert(dir, 'nginx-');
  const port = await freePort();
  const temp = path.join(dir, 'nginx-temp');
  await mkdir(temp, { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  const log = path.join(dir, 'nginx-error.log');
  await writeFile(
    conf,
    `${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${log} warn;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    root ${root};
  }
}
`,
  );
  const child = spawn(NGINX, ['-e', log, '-p', dir, '-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
  try {
    await waitFor('nginx to listen', () => (child.exitCode === null ? listening() : Promise.reject(new Error('nginx exited'))), 5_000);
  } catch {
    child.kill();
    throw new Error(`nginx did not start${existsSync(log) ? `: ${readFileSync(log, 'utf8').slice(-500)}` : ''}`);
  }
  return {
    url: `https://localhost:${port}`,
    ca: readFileSync(cert),
    async stop() {
      if (child.exitCode === null) child.kill('SIGQUIT');
      await exited;
    },
  };
}
