// A portal on another origin (say https://portal.uni.example) calling keyrelease's /graphql with
// the types GraphQL Code Generator made from schema.graphql and the operations. If the schema
// changes in a way that breaks these operations, `npm run generate` or `tsc` fails.
import type {
  CreateKeyMutation,
  CreateKeyMutationVariables,
  VerifyKeyMutation,
  VerifyKeyMutationVariables,
} from "./generated/graphql";

const API = "https://keys.uni.example/graphql"; // the portal's origin is in KEYRELEASE_CORS_ORIGINS

async function call<Result, Variables>(query: string, variables: Variables, token: string): Promise<Result> {
  const response = await fetch(API, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: Result; errors?: { message: string }[] };
  if (!body.data) throw new Error(body.errors?.[0]?.message ?? `HTTP ${response.status}`);
  return body.data;
}

/** Create a key and say what to show: the verification screen, or the message next to a field. */
export async function createKey(query: string, token: string, name: string): Promise<string> {
  const variables: CreateKeyMutationVariables = { input: { name, kind: "INSTITUTIONAL" } };
  const { createKey: result } = await call<CreateKeyMutation, CreateKeyMutationVariables>(query, variables, token);
  switch (result.__typename) {
    case "ApiKey":
      return `Verify “${result.name}” before ${result.verificationDeadline}: ${result.attemptsRemaining} attempts left.`;
    case "ValidationError":
      return `${result.field}: ${result.message}`;
    default:
      // Every other member is an expected refusal (a limit reached, creation suspended): say it.
      return result.message;
  }
}

export async function verifyKey(query: string, token: string, keyId: string, code: string): Promise<boolean> {
  const variables: VerifyKeyMutationVariables = { input: { keyId, code } };
  const { verifyKey: result } = await call<VerifyKeyMutation, VerifyKeyMutationVariables>(query, variables, token);
  return result.__typename === "ApiKey" && result.status === "ACTIVE";
}
