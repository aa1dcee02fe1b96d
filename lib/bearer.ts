/**
 * `Authorization: Bearer <token>` (HTTP headers, gRPC metadata, WebSocket upgrades). Any other
 * scheme (a proxy's or a browser's Basic) is not a credential of ours: the other forms a request
 * carries are looked at instead.
 */
export function bearerToken(authorization: string | undefined): string | undefined {
	return authorization === undefined ? undefined : /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(authorization)?.[1];
}
