// File: client/commands.h
// -----------------------------------------------------------------------------
// alignctl's command groups, noun then verb (as kubectl and gh):
//   alignctl health
//   alignctl datasets   list | get | delete | generate | upload
//   alignctl sessions   create | list | get | pause | resume | cancel | delete | watch |
//                       predict | evaluate | sweep | export
//   alignctl snapshots  list | get | download
//   alignctl experiments create | get | list | watch | compare | cancel | delete
//   alignctl token      new
// and three shortcuts: `alignctl train` = sessions create, `alignctl watch` = sessions
// watch, `alignctl upload` = datasets upload. Each group lives in its own file.
#ifndef ALIGND_CLIENT_COMMANDS_H_
#define ALIGND_CLIENT_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "alignd/v1/sessions.pb.h"

namespace alignd::client {

void AddHealthCommand(CLI::App& app);
// `alignctl token new PRINCIPAL ROLE`: a token and its line for alignd's --token_file.
void AddTokenCommands(CLI::App& app);
// `shortcuts` gets the top-level aliases.
void AddDatasetCommands(CLI::App& app, CLI::App& shortcuts);
void AddSessionCommands(CLI::App& app, CLI::App& shortcuts);
void AddSnapshotCommands(CLI::App& app);
// Every session `request` lists, page after page (sessions_cmd.cc); exits with the call's
// status, `what` naming the command.
std::vector<v1::Session> ListAllSessions(v1::ListSessionsRequest request, const std::string& what);
// experiments (experiments_cmd.cc).
void AddExperimentCommands(CLI::App& app);
// sessions export (export_cmd.cc).
void AddExportCommand(CLI::App* sessions);

}  // namespace alignd::client

#endif  // ALIGND_CLIENT_COMMANDS_H_
