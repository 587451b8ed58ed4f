import { loadConfig } from './config.ts';
import { createLoftStack } from './stack.ts';

// The Pulumi program: `pulumi up` runs this file (Pulumi.yaml: nodejs with `--import tsx`).
const stack = createLoftStack(loadConfig());

/** Base URL of the cache: substituters are `<cacheUrl>/<cache name>`. */
export const cacheUrl = stack.cacheUrl;
export const bucketName = stack.bucket.bucket;
export const ecrRepositoryUrl = stack.repository.repositoryUrl;
export const dbEndpoint = stack.db.endpoint;
export const albDnsName = stack.alb.dnsName;
export const httpsEnabled = stack.httpsEnabled;
export const region = stack.region;
export const clusterName = stack.cluster.name;
export const apiServiceName = stack.apiService.name;
export const workerServiceName = stack.workerService.name;
export const logGroupName = stack.logGroup.name;
export const databaseUrlSecretArn = stack.dbUrlSecret.arn;
export const tokenSecretArn = stack.tokenSecret.arn;
/** For the release pipeline's `aws ecs run-task` (migrations, `loft token create`): see README.md. */
export const migrateTaskDefinitionArn = stack.taskDefinitions.migrate.arn;
export const migrateTaskFamily = stack.taskDefinitions.migrate.family;
export const taskSubnetIds = stack.taskSubnetIds;
export const taskSecurityGroupId = stack.securityGroups.ecs.id;
export const taskAssignPublicIp = stack.assignPublicIp;
