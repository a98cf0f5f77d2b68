// tools/monitor_view.cpp: the monitor's full-screen view on ncurses: layout, keys, pause, filter.
#include "monitor_view.hpp"

#include "common.hpp"

#include <fmt/format.h>

// Without this, curses.h defines move(), clear(), erase(), refresh(), timeout() as macros.
#define NCURSES_NOMACROS 1
#include <curses.h>

#include <langinfo.h>
#include <unistd.h>

#include <algorithm>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>
#include <thread>

namespace peerbus::tools::monitor {

namespace {

// Owns the curses screen: the terminal is restored however run_screen is left.
class curses_session {
 public:
  curses_session() : screen_(newterm(nullptr, stdout, stdin)) {}
  ~curses_session() {
    if (!screen_) return;
    endwin();
    delscreen(screen_);
  }
  curses_session(const curses_session&) = delete;
  curses_session& operator=(const curses_session&) = delete;
  explicit operator bool() const noexcept { return screen_ != nullptr; }

 private:
  SCREEN* screen_;
};

enum pair_id : short { pair_alert = 1, pair_accent = 2, pair_warn = 3 };

struct attrs {
  attr_t title = A_REVERSE;
  attr_t header = A_BOLD | A_UNDERLINE;
  attr_t section = A_BOLD;
  attr_t focus = A_BOLD | A_REVERSE;
  attr_t alert = A_BOLD;
  attr_t dim = A_DIM;
  attr_t warn = A_BOLD;
};

attrs make_attrs(bool color) {
  attrs a;
  if (!color || !has_colors()) return a;
  start_color();
  use_default_colors();
  init_pair(pair_alert, COLOR_RED, -1);
  init_pair(pair_accent, COLOR_CYAN, -1);
  init_pair(pair_warn, COLOR_YELLOW, -1);
  a.alert = A_BOLD | COLOR_PAIR(pair_alert);
  a.section = A_BOLD | COLOR_PAIR(pair_accent);
  a.warn = A_BOLD | COLOR_PAIR(pair_warn);
  return a;
}

// Writes `text` at (y, x), cut to what is left of the line; `pad` fills the line to the edge.
void put(int y, int x, std::string_view text, attr_t a, bool pad = false) {
  const int h = getmaxy(stdscr);
  const int w = getmaxx(stdscr);
  if (y < 0 || y >= h || x >= w) return;
  std::size_t room = static_cast<std::size_t>(w - x);
  // Never write the bottom-right cell: some terminals scroll when it is written.
  if (y == h - 1 && room > 0) --room;
  std::string s = text_width(text) > room || pad ? fit(text, room) : std::string(text);
  wattrset(stdscr, a);
  mvwaddstr(stdscr, y, x, s.c_str());
  wattrset(stdscr, A_NORMAL);
}

struct screen_state {
  view_state view;
  int focus = 0;  // 0: peers, 1: topics
  std::size_t scroll[2] = {0, 0};
  bool paused = false;
  std::optional<model> frozen;
  bool prompting = false;
  std::string input;
  std::string note;  // a short message on the help line (bad filter...)
  steady::time_point note_until{};
};

struct frame_text {
  std::string bus;
  bool drops = false;
  table peers;
  table topics;
};

frame_text build(const model& m, const view_state& v) {
  frame_text f;
  auto now = steady::now();
  f.bus = bus_line(m);
  f.drops = m.totals().dropped_total() > 0;
  f.peers = peers_table(m, v, std::chrono::system_clock::now(), now);
  f.topics = topics_table(m, v, now);
  return f;
}

void draw(const screen_config& cfg, screen_state& st, const frame_text& f, const attrs& at) {
  werase(stdscr);
  const int h = getmaxy(stdscr);
  const int w = getmaxx(stdscr);
  const auto width = static_cast<std::size_t>(std::max(w, 1));

  std::time_t tt = std::time(nullptr);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char clock[16];
  std::strftime(clock, sizeof clock, "%H:%M:%S", &tm);
  // Clock and pause first: on a narrow terminal the URL is what gets cut.
  put(0, 0, fmt::format(" peerbus monitor  {}{}  passive  {}", clock, st.paused ? "  [PAUSED]" : "",
                        cfg.url),
      at.title, true);
  if (h < 8) {
    put(1, 0, "terminal too small", at.warn);
    wrefresh(stdscr);
    return;
  }
  // Bus line, the drops part highlighted when there are any; on a terminal too narrow for it,
  // the drops get a line of their own rather than being cut off.
  const std::string label = "bus  ";
  const std::size_t cut = f.bus.find("  dropped ");
  const bool split = cut != std::string::npos && text_width(label + f.bus) > width;
  put(1, 0, label + f.bus.substr(0, cut), A_NORMAL);
  if (split)
    put(2, 0, std::string(label.size(), ' ') + f.bus.substr(cut + 2), f.drops ? at.alert : A_NORMAL);
  else if (cut != std::string::npos)
    put(1, static_cast<int>(label.size() + cut), f.bus.substr(cut), f.drops ? at.alert : A_NORMAL);
  const int bus_lines = split ? 2 : 1;

  // Rows left for the two tables: title, bus, help, and a title and a header per table.
  const int avail = std::max(0, h - 6 - bus_lines);
  const std::size_t np = f.peers.rows.size();
  const std::size_t nt = f.topics.rows.size();
  std::size_t rp = np, rt = nt;
  const auto a = static_cast<std::size_t>(avail);
  if (np + nt > a) {
    const std::size_t half = a / 2;
    if (np <= half) {
      rp = np;
      rt = a - np;
    } else if (nt <= a - half) {
      rt = nt;
      rp = a - nt;
    } else {
      rp = half;
      rt = a - half;
    }
  }
  st.scroll[0] = std::min(st.scroll[0], np > rp ? np - rp : 0);
  st.scroll[1] = std::min(st.scroll[1], nt > rt ? nt - rt : 0);

  int y = 1 + bus_lines;
  auto section = [&](int index, const char* name, const table& t, std::size_t shown,
                     const std::string& extra) {
    const std::size_t first = st.scroll[index];
    std::string title = fmt::format("{} {} {}", st.focus == index ? ">" : " ", name, t.rows.size());
    if (shown < t.rows.size())
      title += fmt::format(" (rows {}-{})", shown == 0 ? 0 : first + 1, first + shown);
    title += extra;
    put(y++, 0, title, st.focus == index ? at.focus : at.section);
    auto lines = render(t, width);
    put(y++, 0, lines[0], at.header);
    for (std::size_t i = 0; i < shown && first + i + 1 < lines.size(); ++i) {
      const row_style rs = t.styles[first + i];
      put(y++, 0, lines[first + i + 1],
          rs == row_style::alert ? at.alert : rs == row_style::dim ? at.dim : A_NORMAL);
    }
  };
  const auto& v = st.view;
  section(0, "PEERS", f.peers, rp,
          fmt::format("  sort: {}{}", to_string(v.peers_by), v.peers_reversed ? " (reversed)" : ""));
  section(1, "TOPICS", f.topics, rt,
          fmt::format("  sort: {}{}{}", to_string(v.topics_by), v.topics_reversed ? " (reversed)" : "",
                      v.filter.empty() ? std::string() : "  filter: " + v.filter));

  if (st.prompting) {
    const std::string prompt = "filter topics (pattern, e.g. file.> ; empty: all; Esc cancels): ";
    put(h - 1, 0, prompt + st.input, at.warn);
    curs_set(1);
    wmove(stdscr, h - 1, std::min(w - 1, static_cast<int>(text_width(prompt + st.input))));
  } else {
    curs_set(0);
    if (!st.note.empty() && steady::now() < st.note_until)
      put(h - 1, 0, st.note, at.warn);
    else
      put(h - 1, 0,
          "q quit  p pause  s sort  r reverse  / filter  Tab peers/topics  arrows scroll",
          at.dim);
  }
  wrefresh(stdscr);
}

void handle_prompt_key(screen_state& st, int ch) {
  if (ch == 27) {  // Esc
    st.prompting = false;
    return;
  }
  if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
    st.prompting = false;
    if (st.input.empty() || st.input == ">") {
      st.view.filter.clear();
    } else if (valid_pattern(st.input)) {
      st.view.filter = st.input;
      st.scroll[1] = 0;
    } else {
      st.note = "not a topic pattern: '" + st.input + "' ('.'-separated, * one segment, > the rest)";
      st.note_until = steady::now() + std::chrono::seconds(4);
    }
    return;
  }
  if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
    if (!st.input.empty()) st.input.pop_back();
    return;
  }
  if (ch >= 0x21 && ch <= 0x7e && st.input.size() < 255) st.input += static_cast<char>(ch);
}

// Returns false to quit.
bool handle_key(screen_state& st, int ch, std::mutex& mu, const model& m) {
  if (st.prompting) {
    handle_prompt_key(st, ch);
    return true;
  }
  auto& v = st.view;
  const int page = std::max(1, getmaxy(stdscr) / 2 - 4);
  auto& scroll = st.scroll[st.focus];
  switch (ch) {
    case 'q':
    case 'Q': return false;
    case 'p':
    case 'P':
    case ' ':
      st.paused = !st.paused;
      if (st.paused) {
        std::lock_guard<std::mutex> lock(mu);
        st.frozen = m;
      } else {
        st.frozen.reset();
      }
      break;
    case 's':
      if (st.focus == 0)
        v.peers_by = static_cast<peer_sort>((static_cast<std::size_t>(v.peers_by) + 1) % peer_sort_count);
      else
        v.topics_by =
            static_cast<topic_sort>((static_cast<std::size_t>(v.topics_by) + 1) % topic_sort_count);
      break;
    case 'r':
      if (st.focus == 0) v.peers_reversed = !v.peers_reversed;
      else v.topics_reversed = !v.topics_reversed;
      break;
    case '/':
      st.prompting = true;
      st.input = v.filter;
      break;
    case '\t':
    case KEY_BTAB: st.focus = 1 - st.focus; break;
    case KEY_UP:
    case 'k':
      if (scroll > 0) --scroll;
      break;
    case KEY_DOWN:
    case 'j': ++scroll; break;  // clamped when drawn
    case KEY_PPAGE: scroll = scroll > static_cast<std::size_t>(page) ? scroll - page : 0; break;
    case KEY_NPAGE: scroll += static_cast<std::size_t>(page); break;
    case KEY_HOME: scroll = 0; break;
    default: break;
  }
  return true;
}

}  // namespace

int run_screen(const screen_config& cfg, std::mutex& mu, model& m, const std::function<void()>& pull) {
  std::setlocale(LC_ALL, "");
  screen_state st;
  st.view = cfg.initial;
  st.view.utf8 = std::string_view(nl_langinfo(CODESET)) == "UTF-8";
  const char* term = std::getenv("TERM");
  if (!term || !*term) {
    std::fprintf(stderr, "peerbus monitor: TERM is not set; use --plain for periodic summaries\n");
    return exit_error;
  }
  const bool keys = isatty(STDIN_FILENO) != 0;
  curses_session session;
  if (!session) {
    std::fprintf(stderr, "peerbus monitor: cannot drive terminal '%s'; use --plain\n", term);
    return exit_error;
  }
  cbreak();  // keys at once; Ctrl-C still raises SIGINT, which sets stop_requested
  noecho();
  keypad(stdscr, TRUE);
  curs_set(0);
  set_escdelay(25);
  wtimeout(stdscr, 50);
  const attrs at = make_attrs(cfg.color);

  auto next = steady::now();
  bool dirty = true;
  for (;;) {
    if (stop_requested.load()) break;
    auto now = steady::now();
    if (cfg.until && now >= *cfg.until) break;
    if (now >= next) {
      pull();
      next = now + cfg.interval;
      dirty = true;
    }
    if (dirty) {
      frame_text f;
      if (st.frozen) {
        f = build(*st.frozen, st.view);
      } else {
        std::lock_guard<std::mutex> lock(mu);
        f = build(m, st.view);
      }
      draw(cfg, st, f, at);
      dirty = false;
    }
    int ch = ERR;
    if (keys) {
      ch = wgetch(stdscr);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (ch == ERR) continue;
    dirty = true;
    if (ch == KEY_RESIZE) continue;
    if (!handle_key(st, ch, mu, m)) break;
  }
  return exit_ok;
}

}  // namespace peerbus::tools::monitor
