import { errors } from 'jose';
import { TokenError } from './errors.ts';

export interface Expectations {
  issuer?: string;
  audience?: string;
}

const when = (seconds: unknown) => {
  const date = typeof seconds === 'number' ? new Date(seconds * 1000) : undefined;
  // Beyond ±8.64e15 ms a Date is invalid and toISOString throws.
  return date && !Number.isNaN(date.getTime()) ? date.toISOString() : 'an invalid time';
};

/**
 * Turns whatever verification threw into a TokenError with a specific
 * message. Anything unrecognised becomes "malformed token" (cause kept for
 * logs) so verify() never leaks another error class to the HTTP layer.
 */
export function toTokenError(e: unknown, expected: Expectations): TokenError {
  if (e instanceof TokenError) return e;
  if (e instanceof errors.JWSSignatureVerificationFailed) return new TokenError('invalid token signature');
  if (e instanceof errors.JWTExpired) return new TokenError(`token expired at ${when(e.payload.exp)}`);
  if (e instanceof errors.JWTClaimValidationFailed) return claimError(e, expected);
  if (e instanceof errors.JOSENotSupported) return new TokenError(`unsupported token: ${e.message}`);
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) {
    return new TokenError(`malformed token: ${e.message}`);
  }
  return new TokenError('malformed token', { cause: e });
}

function claimError(e: InstanceType<typeof errors.JWTClaimValidationFailed>, expected: Expectations): TokenError {
  if (e.reason === 'missing') return new TokenError(`token is missing required claim '${e.claim}'`);
  switch (e.claim) {
    case 'nbf':
      if (e.reason === 'check_failed') return new TokenError(`token is not valid before ${when(e.payload.nbf)}`);
      break;
    case 'iss':
      return new TokenError(`wrong token issuer (expected '${expected.issuer}')`);
    case 'aud':
      return new TokenError(`wrong token audience (expected '${expected.audience}')`);
  }
  if (e.reason === 'invalid') return new TokenError(`invalid '${e.claim}' claim: must be a number`);
  return new TokenError(`invalid '${e.claim}' claim`);
}
