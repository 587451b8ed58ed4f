import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** A self-signed certificate for `localhost` (EC P-256, one day) and its key: `<prefix>cert.pem` and `<prefix>key.pem` in `dir`. */
export function localhostCert(dir: string, prefix = ''): { key: string; cert: string } {
  const [key, cert] = [path.join(dir, `${prefix}key.pem`), path.join(dir, `${prefix}cert.pem`)];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
  return { key, cert };
}
