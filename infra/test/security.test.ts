import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installMocks, valueOf, settle, ofType, ACCOUNT, REGION } from './mocks.ts';

installMocks();
const { createLoftStack, CONTAINER_PORT } = await import('../stack.ts');
const { resolveConfig } = await import('../config.ts');
const stack = createLoftStack(resolveConfig({ name: 'sec' }));

interface Rule {
  securityGroupId: string;
  ipProtocol: string;
  fromPort: number;
  toPort: number;
  cidrIpv4?: string;
  referencedSecurityGroupId?: string;
}
async function rules(list: typeof stack.ingressRules | typeof stack.egressRules): Promise<Rule[]> {
  return Promise.all(
    list.map(async (r) => ({
      securityGroupId: await valueOf(r.securityGroupId),
      ipProtocol: await valueOf(r.ipProtocol),
      fromPort: (await valueOf(r.fromPort))!,
      toPort: (await valueOf(r.toPort))!,
      cidrIpv4: await valueOf(r.cidrIpv4),
      referencedSecurityGroupId: await valueOf(r.referencedSecurityGroupId),
    })),
  );
}
const sg = {
  alb: await valueOf(stack.securityGroups.alb!.id),
  ecs: await valueOf(stack.securityGroups.ecs.id),
  rds: await valueOf(stack.securityGroups.rds!.id),
};
const ingress = await rules(stack.ingressRules);
const egress = await rules(stack.egressRules);
await settle();

test('the three security groups are distinct and have no inline rules', () => {
  assert.equal(new Set(Object.values(sg)).size, 3);
  for (const r of ofType('aws:ec2/securityGroup:SecurityGroup')) {
    assert.equal(r.inputs.ingress, undefined, `${r.name} has inline ingress`);
    assert.equal(r.inputs.egress, undefined, `${r.name} has inline egress`);
  }
  // Every rule in the program is one of the rule resources the stack returns.
  assert.equal(ofType('aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule').length, ingress.length);
  assert.equal(ofType('aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule').length, egress.length);
  assert.equal(ofType('aws:ec2/securityGroupRule:SecurityGroupRule').length, 0);
});

test('RDS is reachable only from the ECS security group, on TCP 5432', () => {
  const toRds = ingress.filter((r) => r.securityGroupId === sg.rds);
  assert.deepEqual(toRds, [
    { securityGroupId: sg.rds, ipProtocol: 'tcp', fromPort: 5432, toPort: 5432, cidrIpv4: undefined, referencedSecurityGroupId: sg.ecs },
  ]);
  assert.equal(egress.filter((r) => r.securityGroupId === sg.rds).length, 0, 'RDS needs no egress');
});

test('ECS tasks are reachable only from the ALB security group, on TCP 8080', () => {
  assert.equal(CONTAINER_PORT, 8080);
  const toEcs = ingress.filter((r) => r.securityGroupId === sg.ecs);
  assert.deepEqual(toEcs, [
    { securityGroupId: sg.ecs, ipProtocol: 'tcp', fromPort: 8080, toPort: 8080, cidrIpv4: undefined, referencedSecurityGroupId: sg.alb },
  ]);
  const fromEcs = egress.filter((r) => r.securityGroupId === sg.ecs).map((r) => [r.fromPort, r.referencedSecurityGroupId ?? r.cidrIpv4]);
  assert.deepEqual(fromEcs.sort(), [[443, '0.0.0.0/0'], [5432, sg.rds]].sort());
});

test('the ALB accepts 80 and 443 from anywhere and only talks to the ECS tasks on 8080', () => {
  const toAlb = ingress.filter((r) => r.securityGroupId === sg.alb).map((r) => [r.ipProtocol, r.fromPort, r.toPort, r.cidrIpv4]);
  assert.deepEqual(toAlb.sort(), [['tcp', 443, 443, '0.0.0.0/0'], ['tcp', 80, 80, '0.0.0.0/0']].sort());
  const fromAlb = egress.filter((r) => r.securityGroupId === sg.alb);
  assert.deepEqual(fromAlb.map((r) => [r.fromPort, r.toPort, r.referencedSecurityGroupId]), [[8080, 8080, sg.ecs]]);
  assert.ok(ingress.every((r) => r.ipProtocol === 'tcp') && egress.every((r) => r.ipProtocol === 'tcp'), 'no all-protocol (-1) rule');
});

test('the task role may only put/get/delete objects of the bucket and list the bucket', async () => {
  const bucketArn = await valueOf(stack.bucket.arn);
  assert.match(bucketArn, /^arn:aws:s3:::sec-cache-/);
  const policy = JSON.parse(await valueOf(stack.taskRolePolicy.policy));
  assert.equal(await valueOf(stack.taskRolePolicy.role), await valueOf(stack.taskRole.id));
  const statements = policy.Statement.map((s: any) => ({
    Effect: s.Effect,
    Action: [s.Action].flat().sort(),
    Resource: [s.Resource].flat(),
    Condition: s.Condition,
    NotAction: s.NotAction,
    NotResource: s.NotResource,
  }));
  assert.deepEqual(statements, [
    { Effect: 'Allow', Action: ['s3:DeleteObject', 's3:GetObject', 's3:PutObject'], Resource: [`${bucketArn}/*`], Condition: undefined, NotAction: undefined, NotResource: undefined },
    { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: [bucketArn], Condition: undefined, NotAction: undefined, NotResource: undefined },
  ]);
  const everything = JSON.stringify(policy);
  assert.doesNotMatch(everything, /"s3:\*"|"\*"|arn:aws:s3:::\*/, 'no wildcard action or resource');
  // The task role has no other policy attached.
  assert.equal(ofType('aws:iam/rolePolicyAttachment:RolePolicyAttachment').length, 0);
  assert.equal(ofType('aws:iam/rolePolicy:RolePolicy').length, 2);
});

test('the execution role pulls from the ECR repository, writes its log group and reads only the two secrets', async () => {
  const policy = JSON.parse(await valueOf(stack.executionRolePolicy.policy));
  const byAction = new Map<string, string[]>();
  for (const s of policy.Statement) {
    assert.equal(s.Effect, 'Allow');
    for (const a of [s.Action].flat()) byAction.set(a, [s.Resource].flat());
  }
  const repoArn = await valueOf(stack.repository.arn);
  const logArn = await valueOf(stack.logGroup.arn);
  const secrets = [await valueOf(stack.dbUrlSecretArn), await valueOf(stack.tokenSecret.arn)];
  assert.deepEqual(Object.fromEntries(byAction), {
    'ecr:GetAuthorizationToken': ['*'],
    'ecr:BatchCheckLayerAvailability': [repoArn],
    'ecr:GetDownloadUrlForLayer': [repoArn],
    'ecr:BatchGetImage': [repoArn],
    'logs:CreateLogStream': [`${logArn}:*`],
    'logs:PutLogEvents': [`${logArn}:*`],
    'secretsmanager:GetSecretValue': secrets,
  });
  assert.ok(secrets.every((a) => a.startsWith(`arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:sec-`)));
});

test('both roles can only be assumed by ECS tasks', async () => {
  for (const role of [stack.taskRole, stack.executionRole]) {
    const trust = JSON.parse(await valueOf(role.assumeRolePolicy));
    assert.deepEqual(trust.Statement, [{ Effect: 'Allow', Principal: { Service: 'ecs-tasks.amazonaws.com' }, Action: 'sts:AssumeRole' }]);
  }
});
