// File: server/net/tls.h
// -----------------------------------------------------------------------------
// The gRPC port's transport security (docs/DEPLOY.md, "TLS").
//
// With a certificate and key the port speaks TLS only, through gRPC's
// FileWatcherCertificateProvider: the files are read again every `reload_s` seconds,
// so a renewed certificate (cert-manager, a `kubectl create secret` update, a cron
// job) is served to new connections without a restart, and open streams go on on
// their own connections. With a client CA, every client must present a certificate
// it signed (mTLS). Files are checked at start: missing, unparsable, a key that is
// not the certificate's, or a certificate outside its validity period stop alignd
// with a message that says which.
#ifndef ALIGND_SERVER_NET_TLS_H_
#define ALIGND_SERVER_NET_TLS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace alignd::server {

struct TlsFiles {
  std::string cert;       // PEM certificate chain, the server's first
  std::string key;        // PEM private key
  std::string client_ca;  // PEM CA bundle for client certificates; empty: no mTLS
  unsigned reload_s = 10;
  std::string flag = "--tls";  // how errors name the files: {flag}_cert, {flag}_key

  bool enabled() const { return !cert.empty() || !key.empty(); }
};

// FailedPrecondition (naming the file and what is wrong) unless the files are usable now.
absl::Status CheckTlsFiles(const TlsFiles& files);

// One line about a PEM certificate file for the log: subject, issuer, validity.
std::string DescribeCertificate(const std::string& path);

// The credentials of a TLS port (CheckTlsFiles first).
std::shared_ptr<grpc::ServerCredentials> TlsCredentials(const TlsFiles& files);

// True for an address only this machine can reach: an IP literal in 127.0.0.0/8, [::1]
// (or ::ffff:127.x.y.z), localhost, a unix socket. Any other name is not: it is not resolved
// (what a name resolves to is DNS's to change), so 127.0.0.1.example.com is refused.
bool IsLoopback(const std::string& address);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_NET_TLS_H_
