// File: server/net/tls.cc
#include "server/net/tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace alignd::server {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;

std::string TimeText(const ASN1_TIME* t) {
  Bio b(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(b.get(), t);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, n);
}

std::string NameText(const X509_NAME* name) {
  Bio b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, n);
}

absl::StatusOr<Cert> ReadCertificate(const std::string& path, const char* what) {
  Bio b(BIO_new_file(path.c_str(), "r"));
  if (!b) return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": cannot read it"));
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c)
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, ": not a PEM certificate (-----BEGIN CERTIFICATE-----)"));
  return c;
}

absl::Status CheckValidNow(const X509* c, const std::string& path, const char* what) {
  if (X509_cmp_current_time(X509_get0_notAfter(c)) < 0)
    return absl::FailedPreconditionError(absl::StrCat(
        what, " ", path, ": expired on ", TimeText(X509_get0_notAfter(c)), "; renew it"));
  if (X509_cmp_current_time(X509_get0_notBefore(c)) > 0)
    return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": not valid before ",
                                                      TimeText(X509_get0_notBefore(c)),
                                                      " (is the clock right?)"));
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTlsFiles(const TlsFiles& f) {
  const std::string cert_flag = f.flag + "_cert", key_flag = f.flag + "_key";
  if (f.cert.empty() || f.key.empty())
    return absl::FailedPreconditionError(
        absl::StrCat("TLS needs both ", cert_flag, " and ", key_flag));
  absl::StatusOr<Cert> cert = ReadCertificate(f.cert, cert_flag.c_str());
  if (!cert.ok()) return cert.status();
  if (absl::Status s = CheckValidNow(cert->get(), f.cert, cert_flag.c_str()); !s.ok()) return s;
  Bio kb(BIO_new_file(f.key.c_str(), "r"));
  if (!kb)
    return absl::FailedPreconditionError(absl::StrCat(key_flag, " ", f.key, ": cannot read it"));
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!key)
    return absl::FailedPreconditionError(
        absl::StrCat(key_flag, " ", f.key, ": not an unencrypted PEM private key"));
  if (X509_check_private_key(cert->get(), key.get()) != 1)
    return absl::FailedPreconditionError(absl::StrCat(
        key_flag, " ", f.key, " is not the key of the certificate in ", cert_flag, " ", f.cert));
  if (!f.client_ca.empty()) {
    absl::StatusOr<Cert> ca = ReadCertificate(f.client_ca, "--tls_client_ca");
    if (!ca.ok()) return ca.status();
  }
  if (f.reload_s < 1) return absl::FailedPreconditionError("--tls_reload_s must be >= 1");
  return absl::OkStatus();
}

std::string DescribeCertificate(const std::string& path) {
  absl::StatusOr<Cert> c = ReadCertificate(path, "certificate");
  if (!c.ok()) return std::string(c.status().message());
  return absl::StrCat("subject ", NameText(X509_get_subject_name(c->get())), "; issuer ",
                      NameText(X509_get_issuer_name(c->get())), "; valid until ",
                      TimeText(X509_get0_notAfter(c->get())));
}

std::shared_ptr<grpc::ServerCredentials> TlsCredentials(const TlsFiles& f) {
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      f.key, f.cert, f.client_ca, f.reload_s);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (f.client_ca.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

bool IsLoopback(const std::string& address) {
  absl::string_view a = address;
  if (absl::StartsWith(a, "unix:") || absl::StartsWith(a, "unix-abstract:")) return true;
  // gRPC's URI forms of an address: ipv4:H:P, ipv6:[H]:P, dns:H:P (dns:///H:P).
  for (absl::string_view scheme : {"ipv4:", "ipv6:", "dns:///", "dns:"})
    if (absl::ConsumePrefix(&a, scheme)) break;
  const size_t colon = a.rfind(':');
  if (colon == absl::string_view::npos) return false;  // no port: not an address we serve
  absl::string_view host = a.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  // A name is not resolved: what it means is up to DNS, now and later
  // (127.0.0.1.example.com is anyone's). localhost alone is taken at its word (RFC 6761).
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  const std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace alignd::server
