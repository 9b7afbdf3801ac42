// Every GraphQL document these pages send. Each is a named operation, written as a frontend
// team would write it: ask for what the screen shows, and for the members of the result
// union it must handle. The schema is in schema.graphql; the rules in docs/api.md.

const KEY_FIELDS = `
  fragment KeyFields on ApiKey {
    id
    name
    kind
    status
    clientId
    createdAt
    expiresAt
    verificationDeadline
    codeExpiresAt
    attemptsRemaining
    resendsRemaining
    lockReason
    revealed
    verifiedAt
    revokedAt
    compromisedAt
    compromiseUrl
    lastUsedAt
    partnerName
    partnerEmail
    releaseProof
    lastDelivery { status at sentAt nextAttemptAt lastError }
    rotation {
      status
      releaseProof
      startedAt
      verificationDeadline
      codeExpiresAt
      attemptsRemaining
      resendsRemaining
      releasedAt
      newSecretFirstUsedAt
      oldSecretRetiresAt
      lockReason
      requestedBy
    }
  }
`;

export const ME = `
  query Me {
    me { name email institution { name } }
    policy { expiryNotices rotationGraceSeconds rotationMaxOverlapSeconds }
  }
`;

export const KEYS = `
  query Keys($first: Int!, $after: String, $status: KeyStatus) {
    keys(first: $first, after: $after, status: $status) {
      edges {
        node { id name kind status createdAt expiresAt verificationDeadline revokedAt compromisedAt lastUsedAt rotation { status } }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

export const EXPIRING_KEYS = `
  query ExpiringKeys($within: String!) {
    keys(first: 100, expiringWithin: $within) {
      edges {
        node { id name expiresAt }
      }
      pageInfo { hasNextPage }
    }
  }
`;

export const KEY = `
  query Key($id: ID!) {
    key(id: $id) { ...KeyFields }
  }
  ${KEY_FIELDS}
`;

export const CREATE_KEY = `
  mutation CreateKey($input: CreateKeyInput!) {
    createKey(input: $input) {
      __typename
      ... on ApiKey { ...KeyFields }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
  ${KEY_FIELDS}
`;

export const VERIFY_KEY = `
  mutation VerifyKey($input: VerifyKeyInput!) {
    verifyKey(input: $input) {
      __typename
      ... on ApiKey { ...KeyFields }
      ... on ValidationError { field message }
      ... on VerificationError { message }
    }
  }
  ${KEY_FIELDS}
`;

export const RESEND_CODE = `
  mutation ResendCode($input: ResendCodeInput!) {
    resendCode(input: $input) {
      __typename
      ... on ApiKey { ...KeyFields }
      ... on Error { message }
      ... on ValidationError { field }
    }
  }
  ${KEY_FIELDS}
`;

// An admin reveals an institutional key with keyId alone (and their token); a partner sends
// the emailed oneTimePassword and no token. Same mutation, same answer.
export const REVEAL_KEY = `
  mutation RevealKey($input: RevealKeyInput!) {
    revealKey(input: $input) {
      __typename
      ... on KeyCredentials { clientId clientSecret }
      ... on VerificationError { message }
      ... on ValidationError { field message }
    }
  }
`;

export const REVOKE_KEY = `
  mutation RevokeKey($input: RevokeKeyInput!) {
    revokeKey(input: $input) {
      __typename
      ... on ApiKey { ...KeyFields }
      ... on KeyNotFoundError { message }
      ... on ValidationError { field message }
    }
  }
  ${KEY_FIELDS}
`;

// A rotation of an active key's secret: a code goes to the admin; verifyKey, resendCode and
// revealKey (above) then act on the rotation while it is open.
export const ROTATE_KEY = `
  mutation RotateKey($input: RotateKeyInput!) {
    rotateKey(input: $input) {
      __typename
      ... on ApiKey { ...KeyFields }
      ... on ValidationError { field }
      ... on Error { message }
    }
  }
  ${KEY_FIELDS}
`;

export const CANCEL_ROTATION = `
  mutation CancelRotation($input: CancelRotationInput!) {
    cancelRotation(input: $input) {
      __typename
      ... on ApiKey { ...KeyFields }
      ... on KeyNotFoundError { message }
      ... on ValidationError { field message }
    }
  }
  ${KEY_FIELDS}
`;

// -- passkeys (passkeys.js) ------------------------------------------------------------

const PASSKEY_FIELDS = `id name createdAt lastUsedAt`;
export const PASSKEYS = `
  query Passkeys {
    passkeys { ${PASSKEY_FIELDS} }
  }
`;
export const START_PASSKEY_REGISTRATION = `
  mutation StartPasskeyRegistration($input: StartPasskeyRegistrationInput!) {
    startPasskeyRegistration(input: $input) {
      __typename
      ... on PasskeyRegistration { registrationId codeExpiresAt requestOptions }
      ... on Error { message }
    }
  }
`;
export const CONFIRM_PASSKEY_REGISTRATION = `
  mutation ConfirmPasskeyRegistration($input: ConfirmPasskeyRegistrationInput!) {
    confirmPasskeyRegistration(input: $input) {
      __typename
      ... on PasskeyOptions { options }
      ... on Error { message }
    }
  }
`;
export const FINISH_PASSKEY_REGISTRATION = `
  mutation FinishPasskeyRegistration($input: FinishPasskeyRegistrationInput!) {
    finishPasskeyRegistration(input: $input) {
      __typename
      ... on Passkey { ${PASSKEY_FIELDS} }
      ... on Error { message }
    }
  }
`;
export const REMOVE_PASSKEY = `
  mutation RemovePasskey($input: RemovePasskeyInput!) {
    removePasskey(input: $input) { __typename ... on Passkey { id name } ... on Error { message } }
  }
`;
export const BEGIN_PASSKEY_VERIFICATION = `
  mutation BeginPasskeyVerification($input: BeginPasskeyVerificationInput!) {
    beginPasskeyVerification(input: $input) {
      __typename
      ... on PasskeyOptions { options }
      ... on Error { message }
    }
  }
`;
export const VERIFY_KEY_WITH_PASSKEY = `
  mutation VerifyKeyWithPasskey($input: VerifyKeyInput!) {
    verifyKey(input: $input) {
      __typename
      ... on ApiKey { id }
      ... on Error { message }
    }
  }
`;

// An admin's API tokens (tokens.js). A token's value comes back once, in CreateApiToken's answer.
const API_TOKEN_FIELDS = `
  fragment ApiTokenFields on ApiToken {
    id
    name
    status
    createdAt
    expiresAt
    lastUsedAt
    revokedAt
    inUse
  }
`;

export const API_TOKENS = `
  query ApiTokens {
    apiTokens { ...ApiTokenFields }
  }
  ${API_TOKEN_FIELDS}
`;

export const CREATE_API_TOKEN = `
  mutation CreateApiToken($input: CreateApiTokenInput!) {
    createApiToken(input: $input) {
      __typename
      ... on CreatedApiToken { value token { ...ApiTokenFields } }
      ... on ValidationError { field message }
      ... on ApiTokenLimitError { message }
    }
  }
  ${API_TOKEN_FIELDS}
`;

export const REVOKE_API_TOKEN = `
  mutation RevokeApiToken($input: RevokeApiTokenInput!) {
    revokeApiToken(input: $input) {
      __typename
      ... on ApiToken { ...ApiTokenFields }
      ... on ApiTokenNotFoundError { message }
      ... on ValidationError { field message }
    }
  }
  ${API_TOKEN_FIELDS}
`;
