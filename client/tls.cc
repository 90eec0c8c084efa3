// File: client/tls.cc
#include "client/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace alignd::client {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot read it"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TimeText(const ASN1_TIME* t) {
  BIO* b = BIO_new(BIO_s_mem());
  ASN1_TIME_print(b, t);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, n);
  BIO_free(b);
  return out;
}

// "host:port" from a gRPC target ("dns:///h:p", "ipv4:h:p", "h:p", "[::1]:p").
std::pair<std::string, std::string> HostPort(std::string target) {
  for (const char* p : {"dns:///", "dns:", "ipv4:", "ipv6:"})
    if (absl::StartsWith(target, p)) target = target.substr(strlen(p));
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos) return {target, "443"};
  std::string host = target.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return {host, target.substr(colon + 1)};
}

bool IsIp(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string LastSslError() {
  unsigned long e = ERR_peek_last_error();
  if (e == 0) return "";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// A sentence for an error of our handshake or of the first read after it.
std::string Explain(const std::string& err, const std::string& address, const Security& s) {
  if (absl::StrContains(err, "wrong version number") ||
      absl::StrContains(err, "packet length too long") ||
      absl::StrContains(err, "record layer failure"))
    return absl::StrCat("the server at ", address,
                        " does not speak TLS (plaintext alignd?): drop --tls, --ca, --cert, --key");
  if (absl::StrContains(err, "certificate required") ||
      (s.cert.empty() && absl::StrContains(err, "handshake failure")))
    return "the server wants a client certificate (mTLS): give --cert and --key "
           "(or ALIGND_CERT, ALIGND_KEY)";
  if (absl::StrContains(err, "unknown ca") || absl::StrContains(err, "bad certificate") ||
      absl::StrContains(err, "certificate expired") ||
      absl::StrContains(err, "certificate unknown"))
    return absl::StrCat("the server refused our certificate --cert ", s.cert,
                        " (not signed by a CA it trusts, or expired): ", err);
  return "";
}

// Called by OpenSSL when the server asks for a certificate and we set none: we remember
// that it asked.
int NoteCertificateRequest(SSL* ssl, X509**, EVP_PKEY**) {
  *static_cast<bool*>(SSL_get_app_data(ssl)) = true;
  return 0;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const Security& s) {
  if (!s.uses_tls()) {
    if (s.has_token())
      return absl::InvalidArgumentError(
          "a token is sent over TLS only: add --tls (and --ca if the server's certificate is not "
          "signed by a CA of this system)");
    return grpc::InsecureChannelCredentials();
  }
  if (s.cert.empty() != s.key.empty())
    return absl::InvalidArgumentError("--cert and --key go together (mTLS)");
  grpc::SslCredentialsOptions o;
  if (!s.ca.empty()) {
    auto ca = ReadFile(s.ca, "--ca");
    if (!ca.ok()) return ca.status();
    o.pem_root_certs = *ca;
  }
  if (!s.cert.empty()) {
    auto cert = ReadFile(s.cert, "--cert");
    if (!cert.ok()) return cert.status();
    auto key = ReadFile(s.key, "--key");
    if (!key.ok()) return key.status();
    o.pem_cert_chain = *cert;
    o.pem_private_key = *key;
  }
  std::shared_ptr<grpc::ChannelCredentials> c = grpc::SslCredentials(o);
  std::string token = s.token;
  if (token.empty() && !s.token_file.empty()) {
    auto t = ReadFile(s.token_file, "--token-file");
    if (!t.ok()) return t.status();
    token = t->substr(0, t->find_first_of("\r\n"));
    while (!token.empty() && token.back() == ' ') token.pop_back();
    if (token.empty())
      return absl::InvalidArgumentError(
          absl::StrCat("--token-file ", s.token_file, ": its first line is empty"));
  }
  if (!token.empty()) c = grpc::CompositeChannelCredentials(c, grpc::AccessTokenCredentials(token));
  return c;
}

std::string DiagnoseTls(const std::string& address, const Security& s) {
  if (!s.uses_tls()) return "";
  // Our own certificate first: that needs no server.
  if (!s.cert.empty()) {
    BIO* b = BIO_new_file(s.cert.c_str(), "r");
    X509* c = b ? PEM_read_bio_X509(b, nullptr, nullptr, nullptr) : nullptr;
    std::string why;
    if (c == nullptr)
      why = absl::StrCat("--cert ", s.cert, " is not a PEM certificate");
    else if (X509_cmp_current_time(X509_get0_notAfter(c)) < 0)
      why = absl::StrCat("our certificate --cert ", s.cert, " expired on ",
                         TimeText(X509_get0_notAfter(c)));
    X509_free(c);
    BIO_free(b);
    if (!why.empty()) return why;
  }
  signal(SIGPIPE, SIG_IGN);  // a server that hangs up on our handshake is an answer, not a death
  const auto [host, port] = HostPort(address);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return "";
  std::string out;
  if (!s.ca.empty() ? SSL_CTX_load_verify_locations(ctx, s.ca.c_str(), nullptr) != 1
                    : SSL_CTX_set_default_verify_paths(ctx) != 1)
    out = absl::StrCat("--ca ", s.ca, " holds no PEM certificate");
  if (out.empty() && !s.cert.empty() &&
      (SSL_CTX_use_certificate_chain_file(ctx, s.cert.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx, s.key.c_str(), SSL_FILETYPE_PEM) != 1))
    out = absl::StrCat("--key ", s.key, " is not the key of --cert ", s.cert);
  if (!out.empty()) {
    SSL_CTX_free(ctx);
    return out;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_client_cert_cb(ctx, NoteCertificateRequest);
  bool asked_for_certificate = false;
  BIO* bio = BIO_new_connect(
      absl::StrCat(IsIp(host) && absl::StrContains(host, ':') ? absl::StrCat("[", host, "]") : host,
                   ":", port)
          .c_str());
  if (bio == nullptr || BIO_do_connect(bio) != 1) {  // not a TLS matter
    BIO_free_all(bio);
    SSL_CTX_free(ctx);
    return "";
  }
  int fd = -1;
  BIO_get_fd(bio, &fd);
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx);
  SSL_set_app_data(ssl, &asked_for_certificate);
  SSL_set_bio(ssl, bio, bio);
  const std::string name = s.server_name.empty() ? host : s.server_name;
  if (IsIp(name))
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
  else {
    SSL_set1_host(ssl, name.c_str());
    SSL_set_tlsext_host_name(ssl, name.c_str());
  }
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl, kAlpn, sizeof kAlpn);
  ERR_clear_error();
  if (SSL_connect(ssl) != 1) {
    const long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
      out = absl::StrCat("the server's certificate does not verify against ",
                         s.ca.empty() ? "this system's CAs" : "--ca " + s.ca, ": ",
                         X509_verify_cert_error_string(v));
      if (v == X509_V_ERR_HOSTNAME_MISMATCH || v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        out += absl::StrCat(" (it is not for '", name,
                            "'; connect by a name it holds, or give --tls-server-name)");
    } else {
      out = Explain(LastSslError(), address, s);
    }
  } else {
    // TLS 1.3 servers judge the client's certificate after the handshake: the verdict
    // comes with the first read. Send HTTP/2's preface and read.
    static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    SSL_write(ssl, kPreface, sizeof kPreface - 1);
    char buf[64];
    ERR_clear_error();
    if (SSL_read(ssl, buf, sizeof buf) <= 0) {
      out = Explain(LastSslError(), address, s);
      // gRPC's TLS 1.3 server hangs up without an alert.
      if (out.empty() && asked_for_certificate)
        out = Explain("certificate required", address, s);
      else if (out.empty() && !s.cert.empty())
        out = Explain("certificate unknown (the server closed the connection)", address, s);
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return out;
}

std::string NewToken() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) std::abort();  // no entropy: no token
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : raw) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      out += kAlphabet[(acc >> (bits - 6)) & 63];
      bits -= 6;
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return "alignd_" + out;
}

}  // namespace alignd::client
