import { loadConfig } from './config.ts';
import { createLoftStack } from './stack.ts';

// The Pulumi program: `pulumi up` runs this file (Pulumi.yaml: nodejs with `--import tsx`).
const stack = createLoftStack(loadConfig());

/** Base URL of the cache: substituters are `<cacheUrl>/<cache name>`. */
export const cacheUrl = stack.cacheUrl;
export const bucketName = stack.bucket.bucket;
export const ecrRepositoryUrl = stack.repository.repositoryUrl;
/** Undefined with a shared database. */
export const dbEndpoint = stack.db?.endpoint;
export const albDnsName = stack.albDnsName;
export const httpsEnabled = stack.httpsEnabled;
export const region = stack.region;
export const clusterName = stack.clusterName;
export const apiServiceName = stack.apiService.name;
export const workerServiceName = stack.workerService.name;
export const logGroupName = stack.logGroup.name;
export const databaseUrlSecretArn = stack.dbUrlSecretArn;
export const tokenSecretArn = stack.tokenSecret.arn;
/** The secret holding the default cache's signing key(s) (LOFT_SIGNING_KEY), when configured. */
export const signingKeySecretArn = stack.signingKeySecretArn;
export const alarmTopicArn = stack.monitoring.topic.arn;
export const dashboardName = stack.monitoring.dashboard.dashboardName;
/** For the release pipeline's `aws ecs run-task` (migrations, `loft token create`): see README.md. */
export const migrateTaskDefinitionArn = stack.taskDefinitions.migrate.arn;
export const migrateTaskFamily = stack.taskDefinitions.migrate.family;
export const taskSubnetIds = stack.taskSubnetIds;
export const taskSecurityGroupId = stack.securityGroups.ecs.id;
export const taskAssignPublicIp = stack.assignPublicIp;
