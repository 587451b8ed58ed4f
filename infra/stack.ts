import * as pulumi from '@pulumi/pulumi';
import * as aws from '@pulumi/aws';
import * as random from '@pulumi/random';
import type { LoftConfig } from './config.ts';
import { createMonitoring, type Monitoring } from './monitoring.ts';
import { createApiScaling, type ApiScaling } from './scaling.ts';

/**
 * Loft on AWS, after the seed design's diagram:
 *
 *   clients ─HTTPS─▶ ALB (public subnets, 2 AZs) ─HTTP 8080─▶ ECS Fargate `serve --mode api` × N
 *                                                               ECS Fargate `serve --mode worker` × 1 (GC)
 *                           (private subnets) ──5432──▶ RDS PostgreSQL 16   ──HTTPS──▶ S3 bucket (chunks)
 *
 * Security groups chain ALB → ECS → RDS; the task role may only read/write/delete objects of the
 * one bucket; the execution role may only pull the image, write its log group and read Loft's
 * secrets (database URL, token HS256 secret, cache signing key). The ECS cluster, the ALB and the
 * database may be existing, shared ones (the seed's scenario B) given by config.
 */

export const CONTAINER_NAME = 'loft';
export const CONTAINER_PORT = 8080;
export const HEALTH_CHECK_PATH = '/v1/healthz';
export const S3_OBJECT_ACTIONS = ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'] as const;
export const S3_BUCKET_ACTIONS = ['s3:ListBucket'] as const;

export type ServeMode = 'api' | 'worker' | 'migrate';

export interface LoftStack {
  network: { vpcId: pulumi.Input<string>; publicSubnetIds: pulumi.Input<string>[]; privateSubnetIds: pulumi.Input<string>[] };
  /** Where the tasks run (private subnets, or public ones when there is no NAT gateway). */
  taskSubnetIds: pulumi.Input<string>[];
  assignPublicIp: boolean;
  /** Groups created here (none for a shared ALB or database), and the ids in use either way. */
  securityGroups: { alb?: aws.ec2.SecurityGroup; ecs: aws.ec2.SecurityGroup; rds?: aws.ec2.SecurityGroup };
  securityGroupIds: { alb: pulumi.Input<string>; ecs: pulumi.Input<string>; rds: pulumi.Input<string> };
  ingressRules: aws.vpc.SecurityGroupIngressRule[];
  egressRules: aws.vpc.SecurityGroupEgressRule[];
  bucket: aws.s3.Bucket;
  bucketVersioning: aws.s3.BucketVersioning;
  bucketPublicAccessBlock: aws.s3.BucketPublicAccessBlock;
  bucketEncryption: aws.s3.BucketServerSideEncryptionConfiguration;
  bucketLifecycle: aws.s3.BucketLifecycleConfiguration;
  bucketPolicy: aws.s3.BucketPolicy;
  /** Undefined with a shared database (existingDbUrlSecretArn). */
  db?: aws.rds.Instance;
  dbParameterGroup?: aws.rds.ParameterGroup;
  dbUrlSecretArn: pulumi.Input<string>;
  tokenSecret: aws.secretsmanager.Secret;
  /** The default cache's signing key(s): a secret created here (signingKey), or the one given. */
  signingKeySecret?: aws.secretsmanager.Secret;
  signingKeySecretArn?: pulumi.Input<string>;
  repository: aws.ecr.Repository;
  logGroup: aws.cloudwatch.LogGroup;
  /** Undefined with a shared cluster (existingClusterArn). */
  cluster?: aws.ecs.Cluster;
  clusterArn: pulumi.Input<string>;
  clusterName: pulumi.Input<string>;
  executionRole: aws.iam.Role;
  executionRolePolicy: aws.iam.RolePolicy;
  taskRole: aws.iam.Role;
  taskRolePolicy: aws.iam.RolePolicy;
  taskDefinitions: Record<ServeMode, aws.ecs.TaskDefinition>;
  apiService: aws.ecs.Service;
  workerService: aws.ecs.Service;
  /** Undefined with a shared ALB, which gets a host-header `listenerRule` instead of `listeners`. */
  alb?: aws.lb.LoadBalancer;
  albDnsName: pulumi.Input<string>;
  albArnSuffix: pulumi.Input<string>;
  targetGroup: aws.lb.TargetGroup;
  listeners: aws.lb.Listener[];
  listenerRule?: aws.lb.ListenerRule;
  dnsRecord?: aws.route53.Record;
  /** Undefined while apiDesiredCount is 0 (the first deploy, before an image exists). */
  scaling?: ApiScaling;
  monitoring: Monitoring;
  httpsEnabled: boolean;
  cacheUrl: pulumi.Output<string>;
  region: pulumi.Output<string>;
}

/** The nth subnet of `newBits` more prefix bits inside an IPv4 CIDR (like Terraform's cidrsubnet). */
export function cidrSubnet(cidr: string, newBits: number, netNum: number): string {
  const [addr, prefixText] = cidr.split('/');
  const prefix = Number(prefixText);
  const octets = addr!.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255)) || !(prefix >= 0 && prefix <= 32)) {
    throw new Error(`invalid IPv4 CIDR ${cidr}`);
  }
  const newPrefix = prefix + newBits;
  if (newPrefix > 28 || netNum >= 2 ** newBits) throw new Error(`cannot cut subnet ${netNum} /${newPrefix} from ${cidr}`);
  const base = octets.reduce((a, o) => a * 256 + o, 0);
  const start = base - (base % 2 ** (32 - prefix)) + netNum * 2 ** (32 - newPrefix);
  const out = [24, 16, 8, 0].map((shift) => Math.floor(start / 2 ** shift) % 256);
  return `${out.join('.')}/${newPrefix}`;
}

export function createLoftStack(cfg: LoftConfig): LoftStack {
  const n = cfg.name;
  const tags = { ...cfg.tags, 'loft:stack': n };
  const tagged = (name: string) => ({ ...tags, Name: name });

  // ── network ────────────────────────────────────────────────────────────────
  let vpcId: pulumi.Input<string>;
  let publicSubnetIds: pulumi.Input<string>[];
  let privateSubnetIds: pulumi.Input<string>[];
  let assignPublicIp = false;
  if (cfg.vpcId) {
    vpcId = cfg.vpcId;
    publicSubnetIds = cfg.publicSubnetIds!;
    privateSubnetIds = cfg.privateSubnetIds!;
  } else {
    const azs = aws.getAvailabilityZonesOutput({ state: 'available' });
    const vpc = new aws.ec2.Vpc(`${n}-vpc`, {
      cidrBlock: cfg.vpcCidr,
      enableDnsHostnames: true,
      enableDnsSupport: true,
      tags: tagged(`${n}-vpc`),
    });
    vpcId = vpc.id;
    const igw = new aws.ec2.InternetGateway(`${n}-igw`, { vpcId: vpc.id, tags: tagged(`${n}-igw`) });
    const publicRt = new aws.ec2.RouteTable(`${n}-public`, {
      vpcId: vpc.id,
      routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: igw.id }],
      tags: tagged(`${n}-public`),
    });
    const publicSubnets = [0, 1].map((i) => {
      const subnet = new aws.ec2.Subnet(`${n}-public-${i}`, {
        vpcId: vpc.id,
        cidrBlock: cidrSubnet(cfg.vpcCidr, 8, i),
        availabilityZone: azs.names.apply((names) => names[i]!),
        mapPublicIpOnLaunch: false,
        tags: tagged(`${n}-public-${i}`),
      });
      new aws.ec2.RouteTableAssociation(`${n}-public-${i}`, { subnetId: subnet.id, routeTableId: publicRt.id });
      return subnet;
    });
    let privateRoutes: aws.types.input.ec2.RouteTableRoute[] = [];
    if (cfg.natGateway) {
      const eip = new aws.ec2.Eip(`${n}-nat`, { domain: 'vpc', tags: tagged(`${n}-nat`) });
      const nat = new aws.ec2.NatGateway(
        `${n}-nat`,
        { allocationId: eip.id, subnetId: publicSubnets[0]!.id, tags: tagged(`${n}-nat`) },
        { dependsOn: [igw] },
      );
      privateRoutes = [{ cidrBlock: '0.0.0.0/0', natGatewayId: nat.id }];
    } else {
      assignPublicIp = true;
    }
    const privateRt = new aws.ec2.RouteTable(`${n}-private`, {
      vpcId: vpc.id,
      routes: privateRoutes,
      tags: tagged(`${n}-private`),
    });
    const privateSubnets = [0, 1].map((i) => {
      const subnet = new aws.ec2.Subnet(`${n}-private-${i}`, {
        vpcId: vpc.id,
        cidrBlock: cidrSubnet(cfg.vpcCidr, 8, 10 + i),
        availabilityZone: azs.names.apply((names) => names[i]!),
        tags: tagged(`${n}-private-${i}`),
      });
      new aws.ec2.RouteTableAssociation(`${n}-private-${i}`, { subnetId: subnet.id, routeTableId: privateRt.id });
      return subnet;
    });
    // The seed's S3 gateway endpoint: chunk traffic to S3 skips the NAT gateway (free, and faster).
    new aws.ec2.VpcEndpoint(`${n}-s3`, {
      vpcId: vpc.id,
      serviceName: pulumi.interpolate`com.amazonaws.${aws.getRegionOutput().region}.s3`,
      vpcEndpointType: 'Gateway',
      routeTableIds: [publicRt.id, privateRt.id],
      tags: tagged(`${n}-s3`),
    });
    publicSubnetIds = publicSubnets.map((s) => s.id);
    privateSubnetIds = privateSubnets.map((s) => s.id);
  }
  const taskSubnetIds = assignPublicIp ? publicSubnetIds : privateSubnetIds;

  // ── security groups: ALB 80/443 from anywhere → ECS 8080 from the ALB only → RDS 5432 from ECS only ──
  // Rules are separate resources: the ALB and ECS groups refer to each other, which inline rules cannot.
  // A shared ALB or database keeps its own group; Loft only adds the rules it needs to it.
  const albSg = cfg.existingAlbArn
    ? undefined
    : new aws.ec2.SecurityGroup(`${n}-alb`, { vpcId, description: 'Loft ALB: HTTP/HTTPS from anywhere', tags: tagged(`${n}-alb`) });
  const ecsSg = new aws.ec2.SecurityGroup(`${n}-ecs`, { vpcId, description: 'Loft ECS tasks: 8080 from the ALB only', tags: tagged(`${n}-ecs`) });
  const rdsSg = cfg.existingDbUrlSecretArn
    ? undefined
    : new aws.ec2.SecurityGroup(`${n}-rds`, { vpcId, description: 'Loft RDS: 5432 from the ECS tasks only', tags: tagged(`${n}-rds`) });
  const albSgId: pulumi.Input<string> = albSg?.id ?? cfg.existingAlbSecurityGroupId!;
  const rdsSgId: pulumi.Input<string> = rdsSg?.id ?? cfg.existingDbSecurityGroupId!;
  const tcp = { ipProtocol: 'tcp' };
  const ingressRules = [
    ...(albSg
      ? [
          new aws.vpc.SecurityGroupIngressRule(`${n}-alb-in-http`, { ...tcp, securityGroupId: albSg.id, fromPort: 80, toPort: 80, cidrIpv4: '0.0.0.0/0', description: 'HTTP from anywhere', tags }),
          new aws.vpc.SecurityGroupIngressRule(`${n}-alb-in-https`, { ...tcp, securityGroupId: albSg.id, fromPort: 443, toPort: 443, cidrIpv4: '0.0.0.0/0', description: 'HTTPS from anywhere', tags }),
        ]
      : []),
    new aws.vpc.SecurityGroupIngressRule(`${n}-ecs-in-alb`, { ...tcp, securityGroupId: ecsSg.id, fromPort: CONTAINER_PORT, toPort: CONTAINER_PORT, referencedSecurityGroupId: albSgId, description: 'Loft API from the ALB', tags }),
    new aws.vpc.SecurityGroupIngressRule(`${n}-rds-in-ecs`, { ...tcp, securityGroupId: rdsSgId, fromPort: 5432, toPort: 5432, referencedSecurityGroupId: ecsSg.id, description: 'PostgreSQL from the Loft tasks', tags }),
  ];
  const egressRules = [
    new aws.vpc.SecurityGroupEgressRule(`${n}-alb-out-ecs`, { ...tcp, securityGroupId: albSgId, fromPort: CONTAINER_PORT, toPort: CONTAINER_PORT, referencedSecurityGroupId: ecsSg.id, description: 'to the Loft tasks', tags }),
    new aws.vpc.SecurityGroupEgressRule(`${n}-ecs-out-rds`, { ...tcp, securityGroupId: ecsSg.id, fromPort: 5432, toPort: 5432, referencedSecurityGroupId: rdsSgId, description: 'to PostgreSQL', tags }),
    // S3 (gateway endpoint), ECR, Secrets Manager, CloudWatch Logs: all HTTPS.
    new aws.vpc.SecurityGroupEgressRule(`${n}-ecs-out-https`, { ...tcp, securityGroupId: ecsSg.id, fromPort: 443, toPort: 443, cidrIpv4: '0.0.0.0/0', description: 'HTTPS to AWS APIs', tags }),
  ];

  // ── S3 ─────────────────────────────────────────────────────────────────────
  const bucket = new aws.s3.Bucket(`${n}-cache`, {
    bucket: cfg.bucketName,
    forceDestroy: cfg.bucketForceDestroy,
    tags,
  });
  const bucketOwnership = new aws.s3.BucketOwnershipControls(`${n}-cache`, {
    bucket: bucket.id,
    rule: { objectOwnership: 'BucketOwnerEnforced' },
  });
  const bucketPublicAccessBlock = new aws.s3.BucketPublicAccessBlock(`${n}-cache`, {
    bucket: bucket.id,
    blockPublicAcls: true,
    blockPublicPolicy: true,
    ignorePublicAcls: true,
    restrictPublicBuckets: true,
  });
  const bucketVersioning = new aws.s3.BucketVersioning(`${n}-cache`, {
    bucket: bucket.id,
    versioningConfiguration: { status: 'Enabled' },
  });
  const bucketEncryption = new aws.s3.BucketServerSideEncryptionConfiguration(`${n}-cache`, {
    bucket: bucket.id,
    rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: 'AES256' }, bucketKeyEnabled: true }],
  });
  const lifecycleRules: aws.types.input.s3.BucketLifecycleConfigurationRule[] = [
    {
      id: 'abort-incomplete-multipart-uploads',
      status: 'Enabled',
      filter: {},
      abortIncompleteMultipartUpload: { daysAfterInitiation: cfg.abortIncompleteMultipartDays },
    },
    {
      // Versioning keeps what garbage collection deletes; without this rule it is never freed.
      id: 'expire-noncurrent-versions',
      status: 'Enabled',
      filter: {},
      noncurrentVersionExpiration: { noncurrentDays: cfg.noncurrentVersionExpirationDays },
      expiration: { expiredObjectDeleteMarker: true },
    },
  ];
  if (cfg.intelligentTieringDays > 0) {
    lifecycleRules.push({
      id: 'intelligent-tiering',
      status: 'Enabled',
      filter: {},
      transitions: [{ days: cfg.intelligentTieringDays, storageClass: 'INTELLIGENT_TIERING' }],
    });
  }
  const bucketLifecycle = new aws.s3.BucketLifecycleConfiguration(
    `${n}-cache`,
    { bucket: bucket.id, rules: lifecycleRules },
    { dependsOn: [bucketVersioning] },
  );
  const bucketPolicy = new aws.s3.BucketPolicy(
    `${n}-cache`,
    {
      bucket: bucket.id,
      policy: pulumi.jsonStringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'DenyInsecureTransport',
            Effect: 'Deny',
            Principal: '*',
            Action: 's3:*',
            Resource: [bucket.arn, pulumi.interpolate`${bucket.arn}/*`],
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
        ],
      }),
    },
    { dependsOn: [bucketPublicAccessBlock, bucketOwnership] },
  );
  const region = bucket.region;

  // ── RDS PostgreSQL (or a shared database: its URL secret is given) ──────────
  let db: aws.rds.Instance | undefined;
  let dbParameterGroup: aws.rds.ParameterGroup | undefined;
  let dbUrlSecretArn: pulumi.Input<string>;
  if (cfg.existingDbUrlSecretArn) {
    dbUrlSecretArn = cfg.existingDbUrlSecretArn;
  } else {
    const dbPassword = new random.RandomPassword(`${n}-db-password`, { length: 32, special: false });
    // TLS is required of every client, not only asked for in the URL (the seed: "in-transit (require SSL)").
    dbParameterGroup = new aws.rds.ParameterGroup(`${n}-db`, {
      family: `postgres${cfg.dbEngineVersion.split('.')[0]}`,
      description: 'Loft PostgreSQL: TLS required',
      parameters: [{ name: 'rds.force_ssl', value: '1', applyMethod: 'immediate' }],
      tags,
    });
    const dbSubnets = new aws.rds.SubnetGroup(`${n}-db`, { subnetIds: privateSubnetIds, tags });
    db = new aws.rds.Instance(`${n}-db`, {
      engine: 'postgres',
      engineVersion: cfg.dbEngineVersion,
      instanceClass: cfg.dbInstanceClass,
      allocatedStorage: cfg.dbAllocatedStorageGb,
      maxAllocatedStorage: cfg.dbMaxAllocatedStorageGb,
      storageType: 'gp3',
      storageEncrypted: true,
      dbName: 'loft',
      username: 'loft',
      password: dbPassword.result,
      port: 5432,
      dbSubnetGroupName: dbSubnets.name,
      parameterGroupName: dbParameterGroup.name,
      vpcSecurityGroupIds: [rdsSgId],
      publiclyAccessible: false,
      multiAz: cfg.dbMultiAz,
      backupRetentionPeriod: cfg.dbBackupRetentionDays,
      copyTagsToSnapshot: true,
      deletionProtection: cfg.dbDeletionProtection,
      skipFinalSnapshot: cfg.dbSkipFinalSnapshot,
      finalSnapshotIdentifier: cfg.dbSkipFinalSnapshot ? undefined : `${n}-db-final`,
      performanceInsightsEnabled: cfg.dbPerformanceInsights,
      autoMinorVersionUpgrade: true,
      applyImmediately: false,
      tags,
    });
    const dbUrlSecret = new aws.secretsmanager.Secret(`${n}-database-url`, {
      description: 'Loft LOFT_DATABASE_URL (PostgreSQL connection URL with password)',
      tags,
    });
    new aws.secretsmanager.SecretVersion(`${n}-database-url`, {
      secretId: dbUrlSecret.id,
      secretString: pulumi.secret(
        pulumi.interpolate`postgresql://loft:${dbPassword.result}@${db.address}:${db.port}/loft?sslmode=${cfg.dbSslMode}`,
      ),
    });
    dbUrlSecretArn = dbUrlSecret.arn;
  }

  // ── secrets ────────────────────────────────────────────────────────────────
  const tokenBytes = new random.RandomBytes(`${n}-token-hs256-secret`, { length: 32 });
  const tokenSecret = new aws.secretsmanager.Secret(`${n}-token-hs256-secret`, {
    description: 'Loft LOFT_TOKEN_HS256_SECRET (base64, 32 bytes): signs and verifies access tokens',
    tags,
  });
  new aws.secretsmanager.SecretVersion(`${n}-token-hs256-secret`, {
    secretId: tokenSecret.id,
    secretString: pulumi.secret(tokenBytes.base64),
  });
  // The design's decision 9: the signing key lives in Secrets Manager, so a lost database does not lose it.
  let signingKeySecret: aws.secretsmanager.Secret | undefined;
  if (cfg.signingKey !== undefined) {
    signingKeySecret = new aws.secretsmanager.Secret(`${n}-signing-key`, {
      description: `Loft LOFT_SIGNING_KEY: Nix secret key(s) of cache '${cfg.defaultCache}' (several during a rotation)`,
      tags,
    });
    new aws.secretsmanager.SecretVersion(`${n}-signing-key`, {
      secretId: signingKeySecret.id,
      secretString: pulumi.secret(cfg.signingKey),
    });
  } else if (cfg.signingKeySecretArn === undefined) {
    pulumi.log.warn(
      'loft: no signingKey or signingKeySecretArn configured, so cache signing keys are generated into the database: ' +
        'losing the database loses them, and every client must then trust a new key.',
    );
  }
  const signingKeySecretArn: pulumi.Input<string> | undefined = signingKeySecret?.arn ?? cfg.signingKeySecretArn;

  // ── ECR, logs, cluster ─────────────────────────────────────────────────────
  const repository = new aws.ecr.Repository(`${n}`, {
    imageTagMutability: 'MUTABLE',
    imageScanningConfiguration: { scanOnPush: true },
    encryptionConfigurations: [{ encryptionType: 'AES256' }],
    tags,
  });
  new aws.ecr.LifecyclePolicy(`${n}`, {
    repository: repository.name,
    policy: JSON.stringify({
      rules: [
        {
          rulePriority: 1,
          description: 'expire untagged images after 7 days',
          selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 7 },
          action: { type: 'expire' },
        },
        {
          rulePriority: 2,
          description: 'keep the 30 newest images',
          selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 30 },
          action: { type: 'expire' },
        },
      ],
    }),
  });
  const image: pulumi.Input<string> = cfg.image ?? pulumi.interpolate`${repository.repositoryUrl}:${cfg.imageTag}`;

  const logGroup = new aws.cloudwatch.LogGroup(`${n}`, {
    name: `/ecs/${n}`,
    retentionInDays: cfg.logRetentionDays,
    tags,
  });
  const cluster = cfg.existingClusterArn
    ? undefined
    : new aws.ecs.Cluster(`${n}`, { settings: [{ name: 'containerInsights', value: 'disabled' }], tags });
  const clusterArn: pulumi.Input<string> = cluster?.arn ?? cfg.existingClusterArn!;
  const clusterName: pulumi.Input<string> = cluster?.name ?? cfg.existingClusterArn!.split('/').at(-1)!;

  // ── IAM ────────────────────────────────────────────────────────────────────
  const assumeByEcsTasks = JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' }, Action: 'sts:AssumeRole' }],
  });
  const executionRole = new aws.iam.Role(`${n}-execution`, {
    description: 'Loft ECS task execution: pull the image, write logs, read the Loft secrets',
    assumeRolePolicy: assumeByEcsTasks,
    tags,
  });
  const executionRolePolicy = new aws.iam.RolePolicy(`${n}-execution`, {
    role: executionRole.id,
    policy: pulumi.jsonStringify({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'EcrAuth', Effect: 'Allow', Action: ['ecr:GetAuthorizationToken'], Resource: '*' },
        {
          Sid: 'EcrPull',
          Effect: 'Allow',
          Action: ['ecr:BatchCheckLayerAvailability', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchGetImage'],
          Resource: [repository.arn],
        },
        {
          Sid: 'Logs',
          Effect: 'Allow',
          Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          Resource: [pulumi.interpolate`${logGroup.arn}:*`],
        },
        {
          Sid: 'LoftSecrets',
          Effect: 'Allow',
          Action: ['secretsmanager:GetSecretValue'],
          Resource: [dbUrlSecretArn, tokenSecret.arn, ...(signingKeySecretArn ? [signingKeySecretArn] : [])],
        },
      ],
    }),
  });
  const taskRole = new aws.iam.Role(`${n}-task`, {
    description: 'Loft server: objects of its own S3 bucket, nothing else',
    assumeRolePolicy: assumeByEcsTasks,
    tags,
  });
  const taskRolePolicy = new aws.iam.RolePolicy(`${n}-task`, {
    role: taskRole.id,
    policy: pulumi.jsonStringify({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'Objects', Effect: 'Allow', Action: [...S3_OBJECT_ACTIONS], Resource: [pulumi.interpolate`${bucket.arn}/*`] },
        { Sid: 'List', Effect: 'Allow', Action: [...S3_BUCKET_ACTIONS], Resource: [bucket.arn] },
      ],
    }),
  });

  // ── load balancer ──────────────────────────────────────────────────────────
  const alb = cfg.existingAlbArn
    ? undefined
    : new aws.lb.LoadBalancer(`${n}-alb`, {
        internal: false,
        loadBalancerType: 'application',
        securityGroups: [albSgId],
        subnets: publicSubnetIds,
        idleTimeout: cfg.albIdleTimeout,
        dropInvalidHeaderFields: true,
        tags,
      });
  const targetGroup = new aws.lb.TargetGroup(`${n}-api`, {
    vpcId,
    port: CONTAINER_PORT,
    protocol: 'HTTP',
    targetType: 'ip',
    deregistrationDelay: cfg.deregistrationDelaySeconds,
    healthCheck: {
      enabled: true,
      path: HEALTH_CHECK_PATH,
      protocol: 'HTTP',
      port: 'traffic-port',
      matcher: '200',
      interval: 30,
      timeout: 5,
      unhealthyThreshold: 3,
      healthyThreshold: 2,
    },
    tags,
  });
  const sharedAlb = cfg.existingAlbArn ? aws.lb.getLoadBalancerOutput({ arn: cfg.existingAlbArn }) : undefined;
  const albDnsName = alb?.dnsName ?? sharedAlb!.dnsName;
  const albZoneId = alb?.zoneId ?? sharedAlb!.zoneId;
  const albArnSuffix = alb?.arnSuffix ?? sharedAlb!.arnSuffix;
  // A shared ALB's listener is the operator's (HTTPS, as README.md asks); Loft adds one host-header rule.
  const httpsEnabled = Boolean(cfg.certificateArn) || Boolean(cfg.existingAlbArn);
  const listeners: aws.lb.Listener[] = [];
  let listenerRule: aws.lb.ListenerRule | undefined;
  if (cfg.existingAlbListenerArn) {
    listenerRule = new aws.lb.ListenerRule(`${n}-host`, {
      listenerArn: cfg.existingAlbListenerArn,
      priority: cfg.albRulePriority,
      conditions: [{ hostHeader: { values: [cfg.domainName!] } }],
      actions: [{ type: 'forward', targetGroupArn: targetGroup.arn }],
      tags,
    });
  } else if (httpsEnabled) {
    listeners.push(
      new aws.lb.Listener(`${n}-https`, {
        loadBalancerArn: alb!.arn,
        port: 443,
        protocol: 'HTTPS',
        sslPolicy: cfg.sslPolicy,
        certificateArn: cfg.certificateArn,
        defaultActions: [{ type: 'forward', targetGroupArn: targetGroup.arn }],
        tags,
      }),
      new aws.lb.Listener(`${n}-http`, {
        loadBalancerArn: alb!.arn,
        port: 80,
        protocol: 'HTTP',
        defaultActions: [{ type: 'redirect', redirect: { protocol: 'HTTPS', port: '443', statusCode: 'HTTP_301' } }],
        tags,
      }),
    );
  } else {
    pulumi.log.warn(
      'loft: no certificateArn configured, so the ALB listens on HTTP only: tokens (netrc passwords, ' +
        'bearer tokens) cross the internet in clear text. Set `pulumi config set loft:certificateArn arn:aws:acm:…`.',
    );
    listeners.push(
      new aws.lb.Listener(`${n}-http`, {
        loadBalancerArn: alb!.arn,
        port: 80,
        protocol: 'HTTP',
        defaultActions: [{ type: 'forward', targetGroupArn: targetGroup.arn }],
        tags,
      }),
    );
  }
  const scheme = httpsEnabled ? 'https' : 'http';
  const cacheUrl = cfg.domainName
    ? pulumi.output(`${scheme}://${cfg.domainName}`)
    : pulumi.interpolate`${scheme}://${albDnsName}`;
  const dnsRecord = cfg.hostedZoneId
    ? new aws.route53.Record(`${n}-alias`, {
        zoneId: cfg.hostedZoneId,
        name: cfg.domainName!,
        type: 'A',
        aliases: [{ name: albDnsName, zoneId: albZoneId, evaluateTargetHealth: true }],
      })
    : undefined;

  // ── task definitions and services ──────────────────────────────────────────
  const sizes: Record<ServeMode, { cpu: number; memory: number }> = {
    api: { cpu: cfg.apiCpu, memory: cfg.apiMemory },
    worker: { cpu: cfg.workerCpu, memory: cfg.workerMemory },
    migrate: { cpu: 256, memory: 512 },
  };
  const taskDefinition = (mode: ServeMode) =>
    new aws.ecs.TaskDefinition(`${n}-${mode}`, {
      family: `${n}-${mode}`,
      networkMode: 'awsvpc',
      requiresCompatibilities: ['FARGATE'],
      cpu: String(sizes[mode].cpu),
      memory: String(sizes[mode].memory),
      runtimePlatform: { operatingSystemFamily: 'LINUX', cpuArchitecture: cfg.cpuArchitecture },
      executionRoleArn: executionRole.arn,
      taskRoleArn: taskRole.arn,
      containerDefinitions: pulumi.jsonStringify([
        {
          name: CONTAINER_NAME,
          image,
          essential: true,
          // The image's ENTRYPOINT is `node dist/src/bin/loft.js`.
          command: ['serve', '--mode', mode],
          portMappings: mode === 'api' ? [{ containerPort: CONTAINER_PORT, protocol: 'tcp' }] : [],
          environment: [
            { name: 'LOFT_LISTEN', value: `0.0.0.0:${CONTAINER_PORT}` },
            { name: 'LOFT_STORAGE_TYPE', value: 's3' },
            { name: 'LOFT_S3_BUCKET', value: bucket.bucket },
            { name: 'LOFT_S3_REGION', value: region },
            { name: 'LOFT_PUBLIC_URL', value: cacheUrl },
            { name: 'LOFT_LOG_LEVEL', value: cfg.logLevel },
            { name: 'LOFT_DEFAULT_CACHE', value: cfg.defaultCache },
          ],
          secrets: [
            { name: 'LOFT_DATABASE_URL', valueFrom: dbUrlSecretArn },
            { name: 'LOFT_TOKEN_HS256_SECRET', valueFrom: tokenSecret.arn },
            // Only the api tasks sign narinfos; they apply the key(s) to the default cache at start.
            ...(mode === 'api' && signingKeySecretArn ? [{ name: 'LOFT_SIGNING_KEY', valueFrom: signingKeySecretArn }] : []),
          ],
          logConfiguration: {
            logDriver: 'awslogs',
            options: { 'awslogs-group': logGroup.name, 'awslogs-region': region, 'awslogs-stream-prefix': mode },
          },
          // SIGTERM finishes requests in flight; SIGKILL only after this (the Fargate maximum), which
          // must exceed the target group's deregistration delay (docs/deployment.md).
          stopTimeout: 120,
        },
      ]),
      tags,
    });
  const taskDefinitions: Record<ServeMode, aws.ecs.TaskDefinition> = {
    api: taskDefinition('api'),
    worker: taskDefinition('worker'),
    migrate: taskDefinition('migrate'),
  };
  const networkConfiguration = { subnets: taskSubnetIds, securityGroups: [ecsSg.id], assignPublicIp };

  const apiService = new aws.ecs.Service(
    `${n}-api`,
    {
      cluster: clusterArn,
      taskDefinition: taskDefinitions.api.arn,
      desiredCount: cfg.apiDesiredCount,
      launchType: 'FARGATE',
      networkConfiguration,
      loadBalancers: [{ targetGroupArn: targetGroup.arn, containerName: CONTAINER_NAME, containerPort: CONTAINER_PORT }],
      healthCheckGracePeriodSeconds: 60,
      // Keep full capacity during a rollout: new tasks must pass the health check before old ones stop.
      deploymentMinimumHealthyPercent: 100,
      deploymentMaximumPercent: 200,
      deploymentCircuitBreaker: { enable: true, rollback: true },
      propagateTags: 'SERVICE',
      tags,
    },
    // The autoscaler owns the task count once it runs; apiDesiredCount is only the starting point.
    { dependsOn: listenerRule ? [listenerRule] : listeners, ignoreChanges: cfg.apiDesiredCount > 0 ? ['desiredCount'] : [] },
  );
  const workerService = new aws.ecs.Service(`${n}-worker`, {
    cluster: clusterArn,
    taskDefinition: taskDefinitions.worker.arn,
    desiredCount: cfg.workerDesiredCount,
    launchType: 'FARGATE',
    networkConfiguration,
    // A lease row lets one worker at a time collect garbage, so overlap during a deploy is harmless.
    deploymentMinimumHealthyPercent: 0,
    deploymentMaximumPercent: 200,
    deploymentCircuitBreaker: { enable: true, rollback: true },
    propagateTags: 'SERVICE',
    tags,
  });

  const scaling =
    cfg.apiDesiredCount > 0
      ? createApiScaling(cfg, tags, { clusterName, serviceName: apiService.name, albArnSuffix, targetGroupArnSuffix: targetGroup.arnSuffix })
      : undefined;
  const monitoring = createMonitoring(
    cfg,
    {
      clusterName,
      services: [
        { role: 'api', name: apiService.name, desiredCount: cfg.apiDesiredCount },
        { role: 'worker', name: workerService.name, desiredCount: cfg.workerDesiredCount },
      ],
      albArnSuffix,
      targetGroupArnSuffix: targetGroup.arnSuffix,
      dbInstanceIdentifier: db?.identifier ?? cfg.existingDbInstanceIdentifier!,
      bucketName: bucket.bucket,
      region,
    },
    tags,
  );

  return {
    network: { vpcId, publicSubnetIds, privateSubnetIds },
    taskSubnetIds,
    assignPublicIp,
    securityGroups: { alb: albSg, ecs: ecsSg, rds: rdsSg },
    securityGroupIds: { alb: albSgId, ecs: ecsSg.id, rds: rdsSgId },
    ingressRules,
    egressRules,
    bucket,
    bucketVersioning,
    bucketPublicAccessBlock,
    bucketEncryption,
    bucketLifecycle,
    bucketPolicy,
    db,
    dbParameterGroup,
    dbUrlSecretArn,
    tokenSecret,
    signingKeySecret,
    signingKeySecretArn,
    repository,
    logGroup,
    cluster,
    clusterArn,
    clusterName,
    executionRole,
    executionRolePolicy,
    taskRole,
    taskRolePolicy,
    taskDefinitions,
    apiService,
    workerService,
    alb,
    albDnsName,
    albArnSuffix,
    targetGroup,
    listeners,
    listenerRule,
    dnsRecord,
    scaling,
    monitoring,
    httpsEnabled,
    cacheUrl,
    region,
  };
}
