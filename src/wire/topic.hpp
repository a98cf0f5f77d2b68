// wire/topic.hpp: the topic and pattern grammar of the wire format (implemented with the matcher).
#pragma once

// The grammar and the matcher live together so validation and matching never disagree.
#include "presence/topic_match.hpp"
