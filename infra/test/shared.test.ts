// The seed's scenario B, "shared infrastructure": an existing VPC, ECS cluster, ALB (a host-header
// rule on its listener) and PostgreSQL (its URL in an existing secret) are used, not created.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installMocks, valueOf, settle, ofType, invoked } from './mocks.ts';

installMocks();
const { createLoftStack } = await import('../stack.ts');
const { resolveConfig } = await import('../config.ts');

const EXISTING = {
  vpcId: 'vpc-shared',
  publicSubnetIds: ['subnet-pub-a', 'subnet-pub-b'],
  privateSubnetIds: ['subnet-priv-a', 'subnet-priv-b'],
  existingClusterArn: 'arn:aws:ecs:us-east-1:123456789012:cluster/platform',
  existingAlbArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shared-alb/0f1e2d3c4b5a6978',
  existingAlbListenerArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shared-alb/0f1e2d3c4b5a6978/abc',
  existingAlbSecurityGroupId: 'sg-shared-alb',
  existingDbUrlSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:platform/loft-database-url-XyZ123',
  existingDbSecurityGroupId: 'sg-shared-db',
  existingDbInstanceIdentifier: 'platform-postgres',
  domainName: 'nix-cache.example.com',
  hostedZoneId: 'Z0123456789ABC',
};
const stack = createLoftStack(resolveConfig({ name: 'shr', ...EXISTING, albRulePriority: 42 }));
await settle();

test('no cluster, ALB, listener, database, parameter group or password is created', () => {
  for (const type of [
    'aws:ecs/cluster:Cluster',
    'aws:lb/loadBalancer:LoadBalancer',
    'aws:lb/listener:Listener',
    'aws:rds/instance:Instance',
    'aws:rds/parameterGroup:ParameterGroup',
    'aws:rds/subnetGroup:SubnetGroup',
    'random:index/randomPassword:RandomPassword',
    'aws:ec2/vpc:Vpc',
  ]) {
    assert.equal(ofType(type, 'shr-').length, 0, type);
  }
  const secrets = ofType('aws:secretsmanager/secret:Secret', 'shr-').map((s) => s.name);
  assert.deepEqual(secrets, ['shr-token-hs256-secret'], 'only the token secret is created');
  const groups = ofType('aws:ec2/securityGroup:SecurityGroup', 'shr-').map((s) => s.name);
  assert.deepEqual(groups, ['shr-ecs'], 'the shared ALB and database keep their own groups');
});

test('the services run in the existing cluster; autoscaling and alarms name it', async () => {
  assert.equal(await valueOf(stack.apiService.cluster), EXISTING.existingClusterArn);
  assert.equal(await valueOf(stack.workerService.cluster), EXISTING.existingClusterArn);
  assert.equal(await valueOf(stack.clusterName), 'platform');
  assert.equal(await valueOf(stack.scaling!.target.resourceId), `service/platform/${await valueOf(stack.apiService.name)}`);
  assert.equal((await valueOf(stack.monitoring.alarms.apiTasks!.dimensions))!.ClusterName, 'platform');
});

test('the shared ALB gets a host-header rule for domainName forwarding to the Loft target group', async () => {
  const rule = stack.listenerRule!;
  assert.equal(await valueOf(rule.listenerArn), EXISTING.existingAlbListenerArn);
  assert.equal(await valueOf(rule.priority), 42);
  assert.deepEqual((await valueOf(rule.conditions)).map((c) => c.hostHeader?.values), [['nix-cache.example.com']]);
  assert.deepEqual((await valueOf(rule.actions)).map((a) => [a.type, a.targetGroupArn]), [['forward', await valueOf(stack.targetGroup.arn)]]);
  assert.deepEqual(stack.listeners, []);
  assert.ok(invoked.some((c) => c.token === 'aws:lb/getLoadBalancer:getLoadBalancer' && c.inputs.arn === EXISTING.existingAlbArn));
  assert.equal(await valueOf(stack.cacheUrl), 'https://nix-cache.example.com');
  assert.deepEqual(await valueOf(stack.dnsRecord!.aliases), [
    { name: 'shared-alb-42.us-east-1.elb.amazonaws.com', zoneId: 'Z35SXDOTRQ7X7K', evaluateTargetHealth: true },
  ]);
  assert.equal((await valueOf(stack.monitoring.alarms.unhealthyTargets!.dimensions))!.LoadBalancer, 'app/shared-alb/0f1e2d3c4b5a6978');
});

test('security group rules connect the tasks to the shared ALB and database groups, nothing wider', async () => {
  const rule = async (r: (typeof stack.ingressRules)[number] | (typeof stack.egressRules)[number]) => [
    await valueOf(r.securityGroupId),
    await valueOf(r.fromPort),
    await valueOf(r.referencedSecurityGroupId),
  ];
  const ecs = await valueOf(stack.securityGroups.ecs.id);
  assert.deepEqual(await Promise.all(stack.ingressRules.map(rule)), [
    [ecs, 8080, 'sg-shared-alb'],
    ['sg-shared-db', 5432, ecs],
  ]);
  const egress = await Promise.all(stack.egressRules.map(rule));
  assert.deepEqual(egress.filter((r) => r[0] === 'sg-shared-alb'), [['sg-shared-alb', 8080, ecs]]);
  assert.deepEqual(egress.filter((r) => r[0] === ecs && r[1] === 5432), [[ecs, 5432, 'sg-shared-db']]);
});

test("the database URL comes from the existing secret; alarms and the dashboard watch the shared instance", async () => {
  const [c] = JSON.parse(await valueOf(stack.taskDefinitions.api.containerDefinitions));
  assert.deepEqual(c.secrets.find((s: any) => s.name === 'LOFT_DATABASE_URL'), { name: 'LOFT_DATABASE_URL', valueFrom: EXISTING.existingDbUrlSecretArn });
  const policy = JSON.parse(await valueOf(stack.executionRolePolicy.policy));
  assert.ok(policy.Statement.find((s: any) => s.Sid === 'LoftSecrets').Resource.includes(EXISTING.existingDbUrlSecretArn));
  assert.deepEqual(await valueOf(stack.monitoring.alarms.dbCpu!.dimensions), { DBInstanceIdentifier: 'platform-postgres' });
  assert.match(await valueOf(stack.monitoring.dashboard.dashboardBody), /"DBInstanceIdentifier","platform-postgres"/);
  assert.equal(stack.db, undefined);
});

test('shared pieces are validated: all-or-none groups, an existing VPC, and a host name for a shared ALB', () => {
  const { existingAlbSecurityGroupId: _, ...albWithoutGroup } = EXISTING;
  assert.throws(() => resolveConfig(albWithoutGroup), /existingAlbArn, existingAlbListenerArn, existingAlbSecurityGroupId together/);
  const { existingDbInstanceIdentifier: __, ...dbWithoutId } = EXISTING;
  assert.throws(() => resolveConfig(dbWithoutId), /existingDbUrlSecretArn, existingDbSecurityGroupId, existingDbInstanceIdentifier together/);
  assert.throws(() => resolveConfig({ existingClusterArn: EXISTING.existingClusterArn }), /existing VPC/);
  const { domainName: ___, hostedZoneId: ____, ...noName } = EXISTING;
  assert.throws(() => resolveConfig(noName), /shared ALB routes to Loft by host name/);
});
