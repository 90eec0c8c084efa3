// File: client/tls.h
// -----------------------------------------------------------------------------
// alignctl's side of TLS and tokens (docs/DEPLOY.md): the channel's credentials from
// --tls/--ca/--cert/--key/--token, and, when a TLS call cannot connect, a diagnosis made
// with a handshake of our own (OpenSSL) that says why in words: the server's
// certificate did not verify against --ca (and OpenSSL's reason: expired, unknown
// issuer, wrong host), our own certificate has expired, the server wants a client
// certificate, or the server does not speak TLS at all.
#ifndef ALIGND_CLIENT_TLS_H_
#define ALIGND_CLIENT_TLS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace alignd::client {

struct Security {
  bool tls = false;
  std::string ca;           // PEM bundle the server's certificate must chain to; empty: system's
  std::string cert;         // PEM client certificate (mTLS)
  std::string key;          // its key
  std::string token;        // bearer token
  std::string token_file;   // or the file that holds it (its first line)
  std::string server_name;  // the name to verify instead of the address's host

  bool has_token() const { return !token.empty() || !token_file.empty(); }
  bool uses_tls() const { return tls || !ca.empty() || !cert.empty() || !key.empty(); }
};

// The credentials for `s`; InvalidArgument naming the flag for an unreadable file, a
// certificate without its key, or a token without TLS. --token wins over --token-file.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const Security& s);

// Why a TLS connection to `address` fails, in a sentence; empty if our handshake succeeds
// (then the failure is elsewhere) or says nothing useful.
std::string DiagnoseTls(const std::string& address, const Security& s);

// A new random token (32 bytes, base64url) for `alignctl token new`.
std::string NewToken();

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_TLS_H_
