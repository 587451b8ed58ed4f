import * as pulumi from '@pulumi/pulumi';

/**
 * Typed stack configuration. Every key is optional (`pulumi config set KEY VALUE` in the project
 * namespace `loft`); `DEFAULTS` holds what an unset key means. README.md lists them all.
 */
export interface LoftConfig {
  /** Prefix of every resource name and tag `loft:stack`; two stacks in one account need different names. */
  name: string;

  // ── network ────────────────────────────────────────────────────────────────
  /** CIDR of the VPC created when `vpcId` is not given. */
  vpcCidr: string;
  /** Use an existing VPC: set `vpcId`, `publicSubnetIds` (ALB) and `privateSubnetIds` (tasks, RDS) together. */
  vpcId?: string;
  publicSubnetIds?: string[];
  privateSubnetIds?: string[];
  /**
   * Created VPC only: one NAT gateway so tasks in the private subnets reach ECR, Secrets Manager and
   * CloudWatch Logs. `false` saves its ~$33/month by running the tasks in the public subnets with a
   * public IP (their security group still admits only the ALB).
   */
  natGateway: boolean;

  // ── containers ─────────────────────────────────────────────────────────────
  /** Full image reference; default `<the ECR repository created here>:<imageTag>`. */
  image?: string;
  imageTag: string;
  apiDesiredCount: number;
  workerDesiredCount: number;
  /** Fargate task sizes (CPU units, MiB). */
  apiCpu: number;
  apiMemory: number;
  workerCpu: number;
  workerMemory: number;
  /** Fargate CPU architecture; `ARM64` is ~20 % cheaper but needs an arm64 image. */
  cpuArchitecture: 'X86_64' | 'ARM64';
  logLevel: string;
  logRetentionDays: number;

  // ── database ───────────────────────────────────────────────────────────────
  dbInstanceClass: string;
  dbEngineVersion: string;
  dbAllocatedStorageGb: number;
  dbMaxAllocatedStorageGb: number;
  dbMultiAz: boolean;
  dbBackupRetentionDays: number;
  dbDeletionProtection: boolean;
  /** When false, `pulumi destroy` leaves a final snapshot named `<name>-db-final`. */
  dbSkipFinalSnapshot: boolean;
  dbPerformanceInsights: boolean;
  /**
   * `sslmode` of the database URL. The parameter group forces TLS (rds.force_ssl=1). node-postgres
   * treats `require` as `verify-full`, which fails unless the RDS CA bundle is trusted in the image
   * (NODE_EXTRA_CA_CERTS), so the default encrypts without verifying the certificate.
   */
  dbSslMode: string;

  // ── storage ────────────────────────────────────────────────────────────────
  /** Bucket name; default a generated unique name starting with `<name>-cache-`. */
  bucketName?: string;
  /** Let `pulumi destroy` delete a non-empty bucket. */
  bucketForceDestroy: boolean;
  /** Move objects to S3 Intelligent-Tiering after this many days; 0 = never (see README: chunks are small). */
  intelligentTieringDays: number;
  /** Versioning keeps deleted/overwritten objects; expire those non-current versions after this many days. */
  noncurrentVersionExpirationDays: number;
  /** Days after which incomplete multipart uploads are aborted. */
  abortIncompleteMultipartDays: number;

  // ── load balancer ──────────────────────────────────────────────────────────
  /** ACM certificate ARN: enables the HTTPS listener (and HTTP→HTTPS redirect). Without it: HTTP only. */
  certificateArn?: string;
  sslPolicy: string;
  /** DNS name clients use (a CNAME/alias to the ALB you create yourself); default the ALB's DNS name. */
  domainName?: string;
  /** Target-group deregistration delay (s): how long downloads in flight may finish on a stopping task. */
  deregistrationDelaySeconds: number;
  /** ALB idle timeout (s); keep it below Loft's 65 s keep-alive timeout (docs/deployment.md). */
  albIdleTimeout: number;

  /** Extra tags on every resource that takes tags. */
  tags: Record<string, string>;

  // ── shared infrastructure (the seed's scenario B): use what exists instead of creating it ──
  /** An existing ECS cluster (ARN) for the services, instead of a new one. */
  existingClusterArn?: string;
  /**
   * An existing ALB: its ARN, the listener (HTTPS, usually) that gets a host-header rule for
   * `domainName`, and its security group (the tasks admit 8080 from it). Set all three together.
   */
  existingAlbArn?: string;
  existingAlbListenerArn?: string;
  existingAlbSecurityGroupId?: string;
  /** Priority of the listener rule on a shared ALB (unique per listener). */
  albRulePriority: number;
  /**
   * An existing PostgreSQL (e.g. a `loft` database on a shared RDS instance): a Secrets Manager
   * secret holding the whole `LOFT_DATABASE_URL` (with `sslmode`), the instance's security group
   * (the tasks get a 5432 rule into it) and its identifier (alarms, dashboard). Set all three together.
   */
  existingDbUrlSecretArn?: string;
  existingDbSecurityGroupId?: string;
  existingDbInstanceIdentifier?: string;

  // ── cache signing keys (docs/deployment.md, "Rotate a signing key") ─────────
  /** The cache that LOFT_SIGNING_KEY signs for (LOFT_DEFAULT_CACHE); created public on first start. */
  defaultCache: string;
  /**
   * The default cache's secret key(s), `nix key generate-secret` output, whitespace-separated
   * during a rotation (`pulumi config set --secret loft:signingKey …`). Stored in a Secrets
   * Manager secret created here.
   */
  signingKey?: pulumi.Input<string>;
  /** Or an existing Secrets Manager secret holding the key(s), managed outside Pulumi. */
  signingKeySecretArn?: string;

  // ── scaling ────────────────────────────────────────────────────────────────
  /** Service autoscaling bounds of the api service (the seed: 1–3). */
  apiMinCount: number;
  apiMaxCount: number;
  /** Scale out above this average CPU (%), and above this many requests per task per minute. */
  scaleCpuPercent: number;
  scaleRequestsPerTarget: number;

  // ── monitoring ─────────────────────────────────────────────────────────────
  /** E-mail addresses subscribed to the alarm topic (each must confirm AWS's e-mail). */
  alarmEmails: string[];
  /** The bucket-size alarm's threshold, GB (the seed's cost warning: 500). */
  bucketSizeAlarmGb: number;

  // ── DNS ────────────────────────────────────────────────────────────────────
  /** A Route 53 hosted zone: an alias record `domainName` → the ALB is created in it. */
  hostedZoneId?: string;
}

export const DEFAULTS: LoftConfig = {
  name: 'loft',
  vpcCidr: '10.0.0.0/16',
  natGateway: true,
  imageTag: 'latest',
  apiDesiredCount: 2,
  workerDesiredCount: 1,
  apiCpu: 512,
  apiMemory: 1024,
  workerCpu: 256,
  workerMemory: 512,
  cpuArchitecture: 'X86_64',
  logLevel: 'info',
  logRetentionDays: 30,
  dbInstanceClass: 'db.t4g.micro',
  dbEngineVersion: '16',
  dbAllocatedStorageGb: 20,
  dbMaxAllocatedStorageGb: 100,
  dbMultiAz: false,
  dbBackupRetentionDays: 7,
  dbDeletionProtection: true,
  dbSkipFinalSnapshot: false,
  dbPerformanceInsights: false,
  dbSslMode: 'no-verify',
  bucketForceDestroy: false,
  intelligentTieringDays: 0,
  noncurrentVersionExpirationDays: 90,
  abortIncompleteMultipartDays: 7,
  sslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06',
  deregistrationDelaySeconds: 30,
  albIdleTimeout: 60,
  tags: {},
  albRulePriority: 100,
  defaultCache: 'main',
  apiMinCount: 1,
  apiMaxCount: 3,
  scaleCpuPercent: 70,
  scaleRequestsPerTarget: 1000,
  alarmEmails: [],
  bucketSizeAlarmGb: 500,
};

/** Defaults overlaid with `overrides`, validated. Tests build configs with this. */
export function resolveConfig(overrides: Partial<LoftConfig> = {}): LoftConfig {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const cfg: LoftConfig = { ...DEFAULTS, ...defined };
  validate(cfg);
  return cfg;
}

/** Reads the stack's `loft:*` configuration. */
export function loadConfig(c: pulumi.Config = new pulumi.Config('loft')): LoftConfig {
  return resolveConfig({
    name: c.get('name'),
    vpcCidr: c.get('vpcCidr'),
    vpcId: c.get('vpcId'),
    publicSubnetIds: c.getObject<string[]>('publicSubnetIds'),
    privateSubnetIds: c.getObject<string[]>('privateSubnetIds'),
    natGateway: c.getBoolean('natGateway'),
    image: c.get('image'),
    imageTag: c.get('imageTag'),
    apiDesiredCount: c.getNumber('apiDesiredCount'),
    workerDesiredCount: c.getNumber('workerDesiredCount'),
    apiCpu: c.getNumber('apiCpu'),
    apiMemory: c.getNumber('apiMemory'),
    workerCpu: c.getNumber('workerCpu'),
    workerMemory: c.getNumber('workerMemory'),
    cpuArchitecture: c.get('cpuArchitecture', { allowedValues: ['X86_64', 'ARM64'] }) as LoftConfig['cpuArchitecture'] | undefined,
    logLevel: c.get('logLevel', { allowedValues: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] }),
    logRetentionDays: c.getNumber('logRetentionDays'),
    dbInstanceClass: c.get('dbInstanceClass'),
    dbEngineVersion: c.get('dbEngineVersion'),
    dbAllocatedStorageGb: c.getNumber('dbAllocatedStorageGb'),
    dbMaxAllocatedStorageGb: c.getNumber('dbMaxAllocatedStorageGb'),
    dbMultiAz: c.getBoolean('dbMultiAz'),
    dbBackupRetentionDays: c.getNumber('dbBackupRetentionDays'),
    dbDeletionProtection: c.getBoolean('dbDeletionProtection'),
    dbSkipFinalSnapshot: c.getBoolean('dbSkipFinalSnapshot'),
    dbPerformanceInsights: c.getBoolean('dbPerformanceInsights'),
    dbSslMode: c.get('dbSslMode', { allowedValues: ['no-verify', 'verify-full'] }),
    bucketName: c.get('bucketName'),
    bucketForceDestroy: c.getBoolean('bucketForceDestroy'),
    intelligentTieringDays: c.getNumber('intelligentTieringDays'),
    noncurrentVersionExpirationDays: c.getNumber('noncurrentVersionExpirationDays'),
    abortIncompleteMultipartDays: c.getNumber('abortIncompleteMultipartDays'),
    certificateArn: c.get('certificateArn'),
    sslPolicy: c.get('sslPolicy'),
    domainName: c.get('domainName'),
    deregistrationDelaySeconds: c.getNumber('deregistrationDelaySeconds'),
    albIdleTimeout: c.getNumber('albIdleTimeout'),
    tags: c.getObject<Record<string, string>>('tags'),
    existingClusterArn: c.get('existingClusterArn'),
    existingAlbArn: c.get('existingAlbArn'),
    existingAlbListenerArn: c.get('existingAlbListenerArn'),
    existingAlbSecurityGroupId: c.get('existingAlbSecurityGroupId'),
    albRulePriority: c.getNumber('albRulePriority'),
    existingDbUrlSecretArn: c.get('existingDbUrlSecretArn'),
    existingDbSecurityGroupId: c.get('existingDbSecurityGroupId'),
    existingDbInstanceIdentifier: c.get('existingDbInstanceIdentifier'),
    defaultCache: c.get('defaultCache'),
    signingKey: c.getSecret('signingKey'),
    signingKeySecretArn: c.get('signingKeySecretArn'),
    apiMinCount: c.getNumber('apiMinCount'),
    apiMaxCount: c.getNumber('apiMaxCount'),
    scaleCpuPercent: c.getNumber('scaleCpuPercent'),
    scaleRequestsPerTarget: c.getNumber('scaleRequestsPerTarget'),
    alarmEmails: c.getObject<string[]>('alarmEmails'),
    bucketSizeAlarmGb: c.getNumber('bucketSizeAlarmGb'),
    hostedZoneId: c.get('hostedZoneId'),
  });
}

function allOrNone(cfg: LoftConfig, keys: Array<keyof LoftConfig>): void {
  const given = keys.filter((k) => cfg[k] !== undefined).length;
  if (given !== 0 && given !== keys.length) throw new Error(`loft: set ${keys.join(', ')} together (or none)`);
}

function validate(cfg: LoftConfig): void {
  const existing = [cfg.vpcId, cfg.publicSubnetIds, cfg.privateSubnetIds];
  const given = existing.filter((v) => v !== undefined).length;
  if (given !== 0 && given !== 3) {
    throw new Error('loft: set vpcId, publicSubnetIds and privateSubnetIds together (or none, to create a VPC)');
  }
  if (given === 3 && (cfg.publicSubnetIds!.length < 2 || cfg.privateSubnetIds!.length < 2)) {
    throw new Error('loft: publicSubnetIds and privateSubnetIds need at least 2 subnets each, in 2 availability zones');
  }
  for (const key of ['apiDesiredCount', 'workerDesiredCount'] as const) {
    if (!Number.isInteger(cfg[key]) || cfg[key] < 0) throw new Error(`loft: ${key} must be an integer ≥ 0`);
  }
  if (cfg.dbBackupRetentionDays < 1) throw new Error('loft: dbBackupRetentionDays must be ≥ 1 (the seed asks for 7)');
  if (!(cfg.deregistrationDelaySeconds >= 0 && cfg.deregistrationDelaySeconds < 120)) {
    throw new Error('loft: deregistrationDelaySeconds must be 0–119, below the container stopTimeout (120 s)');
  }
  if (cfg.abortIncompleteMultipartDays < 1) throw new Error('loft: abortIncompleteMultipartDays must be ≥ 1');
  allOrNone(cfg, ['existingAlbArn', 'existingAlbListenerArn', 'existingAlbSecurityGroupId']);
  allOrNone(cfg, ['existingDbUrlSecretArn', 'existingDbSecurityGroupId', 'existingDbInstanceIdentifier']);
  if ((cfg.existingAlbArn || cfg.existingDbUrlSecretArn || cfg.existingClusterArn) && !cfg.vpcId) {
    throw new Error('loft: a shared ALB, database or cluster lives in an existing VPC: set vpcId, publicSubnetIds and privateSubnetIds too');
  }
  if (cfg.existingAlbArn && !cfg.domainName) {
    throw new Error('loft: a shared ALB routes to Loft by host name: set domainName');
  }
  if (cfg.hostedZoneId && !cfg.domainName) throw new Error('loft: hostedZoneId needs domainName (the record to create)');
  if (cfg.signingKey !== undefined && cfg.signingKeySecretArn !== undefined) {
    throw new Error('loft: set signingKey or signingKeySecretArn, not both');
  }
  if (!(Number.isInteger(cfg.apiMinCount) && cfg.apiMinCount >= 1 && Number.isInteger(cfg.apiMaxCount) && cfg.apiMaxCount >= cfg.apiMinCount)) {
    throw new Error('loft: apiMinCount must be an integer ≥ 1 and apiMaxCount an integer ≥ apiMinCount');
  }
  if (cfg.apiDesiredCount > cfg.apiMaxCount) throw new Error('loft: apiDesiredCount must not exceed apiMaxCount');
  if (!(cfg.scaleCpuPercent > 0 && cfg.scaleCpuPercent <= 100)) throw new Error('loft: scaleCpuPercent must be in (0, 100]');
  if (!(cfg.scaleRequestsPerTarget > 0)) throw new Error('loft: scaleRequestsPerTarget must be > 0');
  if (!(cfg.bucketSizeAlarmGb > 0)) throw new Error('loft: bucketSizeAlarmGb must be > 0');
  if (cfg.dbSslMode === 'disable') throw new Error('loft: dbSslMode disable is refused: the database requires TLS (rds.force_ssl)');
  if (!/^[a-z][a-z0-9-]{0,19}$/.test(cfg.name)) {
    throw new Error('loft: name must be lowercase letters, digits and dashes, ≤ 20 characters (ALB names are short)');
  }
}
