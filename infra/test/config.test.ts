import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { DEFAULTS, loadConfig, resolveConfig } from '../config.ts';
import { cidrSubnet } from '../stack.ts';

test('defaults follow the seed: db.t4g.micro, 7 days of backups, 2 api tasks, 1 worker, 7-day multipart abort', () => {
  const cfg = resolveConfig();
  assert.deepEqual([cfg.apiMinCount, cfg.apiMaxCount, cfg.scaleCpuPercent, cfg.scaleRequestsPerTarget], [1, 3, 70, 1000]);
  assert.equal(cfg.bucketSizeAlarmGb, 500);
  assert.equal(cfg.dbInstanceClass, 'db.t4g.micro');
  assert.equal(cfg.dbEngineVersion, '16');
  assert.equal(cfg.dbBackupRetentionDays, 7);
  assert.equal(cfg.apiDesiredCount, 2);
  assert.equal(cfg.workerDesiredCount, 1);
  assert.equal(cfg.abortIncompleteMultipartDays, 7);
  assert.equal(cfg.deregistrationDelaySeconds, 30);
  assert.equal(cfg.certificateArn, undefined);
  assert.deepEqual(cfg, DEFAULTS);
});

test('undefined overrides keep the defaults; given ones win', () => {
  const cfg = resolveConfig({ apiDesiredCount: undefined, workerDesiredCount: 0, name: 'x' });
  assert.equal(cfg.apiDesiredCount, 2);
  assert.equal(cfg.workerDesiredCount, 0);
  assert.equal(cfg.name, 'x');
});

test('an existing network needs vpcId, publicSubnetIds and privateSubnetIds together, 2 subnets each', () => {
  assert.throws(() => resolveConfig({ vpcId: 'vpc-1' }), /together/);
  assert.throws(
    () => resolveConfig({ vpcId: 'vpc-1', publicSubnetIds: ['a'], privateSubnetIds: ['b', 'c'] }),
    /at least 2 subnets/,
  );
  assert.doesNotThrow(() => resolveConfig({ vpcId: 'vpc-1', publicSubnetIds: ['a', 'b'], privateSubnetIds: ['c', 'd'] }));
});

test('invalid values are refused', () => {
  assert.throws(() => resolveConfig({ apiDesiredCount: -1 }), /apiDesiredCount/);
  assert.throws(() => resolveConfig({ workerDesiredCount: 1.5 }), /workerDesiredCount/);
  assert.throws(() => resolveConfig({ dbBackupRetentionDays: 0 }), /dbBackupRetentionDays/);
  assert.throws(() => resolveConfig({ deregistrationDelaySeconds: 300 }), /stopTimeout/);
  assert.throws(() => resolveConfig({ name: 'Loft_Prod' }), /name/);
  assert.throws(() => resolveConfig({ dbSslMode: 'disable' }), /requires TLS/);
  assert.throws(() => resolveConfig({ apiMinCount: 0 }), /apiMinCount/);
  assert.throws(() => resolveConfig({ apiMinCount: 3, apiMaxCount: 2 }), /apiMaxCount/);
  assert.throws(() => resolveConfig({ apiDesiredCount: 4 }), /must not exceed apiMaxCount/);
  assert.throws(() => resolveConfig({ scaleCpuPercent: 120 }), /scaleCpuPercent/);
  assert.throws(() => resolveConfig({ bucketSizeAlarmGb: 0 }), /bucketSizeAlarmGb/);
  assert.throws(() => resolveConfig({ hostedZoneId: 'Z1' }), /hostedZoneId needs domainName/);
  assert.throws(() => resolveConfig({ signingKey: 'k-1:AAAA', signingKeySecretArn: 'arn:x' }), /signingKey or signingKeySecretArn, not both/);
});

test('loadConfig reads typed loft:* stack configuration', () => {
  pulumi.runtime.setAllConfig({
    'loft:apiDesiredCount': '4',
    'loft:apiMaxCount': '6',
    'loft:natGateway': 'false',
    'loft:certificateArn': 'arn:aws:acm:eu-west-1:1:certificate/x',
    'loft:privateSubnetIds': '["s-1","s-2"]',
    'loft:publicSubnetIds': '["s-3","s-4"]',
    'loft:vpcId': 'vpc-9',
    'loft:tags': '{"team":"ci"}',
  });
  const cfg = loadConfig();
  assert.equal(cfg.apiDesiredCount, 4);
  assert.equal(cfg.natGateway, false);
  assert.equal(cfg.certificateArn, 'arn:aws:acm:eu-west-1:1:certificate/x');
  assert.deepEqual(cfg.privateSubnetIds, ['s-1', 's-2']);
  assert.deepEqual(cfg.tags, { team: 'ci' });
  assert.equal(cfg.workerDesiredCount, 1, 'unset keys keep their default');
  pulumi.runtime.setAllConfig({ 'loft:cpuArchitecture': 'SPARC' });
  assert.throws(() => loadConfig(), /cpuArchitecture/);
});

test('cidrSubnet cuts /24s out of the VPC range like Terraform cidrsubnet', () => {
  assert.equal(cidrSubnet('10.0.0.0/16', 8, 0), '10.0.0.0/24');
  assert.equal(cidrSubnet('10.0.0.0/16', 8, 11), '10.0.11.0/24');
  assert.equal(cidrSubnet('172.31.0.0/16', 4, 1), '172.31.16.0/20');
  assert.equal(cidrSubnet('10.20.0.0/20', 4, 15), '10.20.15.0/24');
  assert.throws(() => cidrSubnet('10.0.0.0/16', 8, 256), /cannot cut/);
  assert.throws(() => cidrSubnet('10.0.0/16', 8, 0), /invalid/);
});
